#!/usr/bin/env bash
# Fetches the ONNX Runtime C/C++ API headers (Debian trixie's libonnxruntime-dev) into a cache folder.
# Only the headers are used: the runtime library comes from the pinned onnxruntime-node package.
# Usage: scripts/fetch-ort-headers.sh DEST   (DEST/include/onnxruntime/onnxruntime_cxx_api.h afterwards)
set -euo pipefail
dest=${1:?usage: fetch-ort-headers.sh DEST}
if [ -f "$dest/include/onnxruntime/onnxruntime_cxx_api.h" ]; then exit 0; fi
command -v apt-get >/dev/null || { echo "fetch-ort-headers: apt-get not found; set ONNXRUNTIME_ROOT to an ONNX Runtime release (include/ and lib/)" >&2; exit 1; }

# Reuse the mirror this machine already uses, so nothing outside its configured archive is contacted.
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -oE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' | grep -oE 'https?://[^ ]+' | head -n1 || true)
[ -n "$mirror" ] || { echo "fetch-ort-headers: no Debian mirror found in /etc/apt; set ONNXRUNTIME_ROOT" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/etc/sources.list.d"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/etc/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/etc/sources.list" -o "Dir::Etc::SourceParts=$work/etc/sources.list.d"
      -o "Dir::Etc::Preferences=$work/etc/preferences" -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d"
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root" -qq)
apt-get "${opts[@]}" update
(cd "$work" && apt-get "${opts[@]}" download libonnxruntime-dev)
deb=$(ls "$work"/libonnxruntime-dev_*.deb | head -n1)
dpkg -x "$deb" "$work/x"
mkdir -p "$dest/include"
rm -rf "$dest/include/onnxruntime"
cp -r "$work/x/usr/include/onnxruntime" "$dest/include/onnxruntime"
basename "$deb" > "$dest/SOURCE"
echo "fetch-ort-headers: headers from $(basename "$deb")"
