#!/usr/bin/env bash
# Installs everything bgrm needs on Debian/Ubuntu: system packages, Node dependencies, the native
# addon, the compiled CLI and the default model (verified). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# native core: compiler, cmake, codecs (libvips for the formats beyond JPEG and PNG), OpenCV's video module (optical flow); video: ffmpeg; Kafka client (librdkafka, built by node-rdkafka):
# ssl/sasl/zstd/lz4 and python3 for node-gyp; the test broker: a JDK and Maven.
PACKAGES=(build-essential cmake pkg-config python3 libturbojpeg0-dev libspng-dev libdeflate-dev zlib1g-dev libvips-dev libopencv-video-dev ffmpeg ca-certificates
  libssl-dev libsasl2-dev libzstd-dev liblz4-dev)
command -v java >/dev/null || PACKAGES+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || PACKAGES+=(maven)
# --test: what only the test suite needs: Debian's Chromium, driven headless by playwright-core; vips's
# command line, which writes the test images of every format; openssl, which makes the certificates of
# the secure test broker (kafka.sh start --secure).
if [ "${1:-}" = "--test" ]; then PACKAGES+=(chromium libvips-tools openssl); fi
missing=()
for p in "${PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v node >/dev/null || { echo "setup: Node.js 20 or newer is needed (https://nodejs.org or your distribution)" >&2; exit 1; }

# node-gyp based dependencies must use this machine's Node headers rather than download them.
export npm_config_nodedir="${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}"
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund

# A few sample photos for the first run: the shared test photos when present, else a generated picture.
mkdir -p samples
if [ -d ../shared/testdata/rembg ]; then
  cp -n ../shared/testdata/rembg/*.jpg samples/ 2>/dev/null || true
fi
if ! ls samples/*.jpg >/dev/null 2>&1; then
  ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=640x480" -frames:v 1 samples/testsrc.jpg
fi
echo "setup: done. Try: ./bin/run.js process samples/ -o cutouts/"
