#!/usr/bin/env bash
# Creates .cache/rembg-venv with rembg (CPU) so that npm run bench can time rembg on the same frames.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .cache/rembg-venv
.cache/rembg-venv/bin/pip install -q "rembg[cpu]"
echo "rembg installed in .cache/rembg-venv"
