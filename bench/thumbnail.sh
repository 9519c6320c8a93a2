#!/usr/bin/env bash
# The worker's thumbnail job (decode a 4000×3000 JPEG, resize to thumb/small/medium with Lanczos3,
# encode JPEG q85) against Pillow doing the same resizes with the same filter, on the same file,
# in the same run, one core each. Goal: faster than Pillow. Prints figures; never fails on them.
#
#   bench/thumbnail.sh [ROUNDS]    (default 15)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

rounds=${1:-15}
sizes="thumb=128,small=320,medium=800"
venv="$ROOT/.tools/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  log "installing Pillow from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pillow
fi
log "building release binaries"
cargo build --release --locked -q -p bench --bin thumbnail-rate
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

photo=$(mktemp --suffix=.jpg)
trap 'rm -f "$photo"' EXIT
# A photo-like 4000×3000 JPEG (noise over gradients, so it compresses like a real photo).
"$venv/bin/python" - "$photo" <<'PY'
import sys
from PIL import Image, ImageFilter
w, h = 4000, 3000
noise = Image.effect_noise((w, h), 40).convert("RGB")
gradient = Image.linear_gradient("L").resize((w, h)).convert("RGB")
Image.blend(noise, gradient, 0.5).filter(ImageFilter.GaussianBlur(1)).save(sys.argv[1], quality=90)
PY
log "$(du -h "$photo" | cut -f1) JPEG, 4000×3000, $rounds rounds each, one core"

ours=$(taskset -c 0 "$bin/thumbnail-rate" "$photo" "$rounds" "$sizes" | sed 's/.*=//')
pillow=$(taskset -c 0 "$venv/bin/python" bench/py/thumbnail_pillow.py "$photo" "$rounds" "$sizes" | sed 's/.*=//')
pillow_version=$("$venv/bin/python" -c 'import PIL; print(PIL.__version__)')
echo "thumbnail (3 sizes) worker: ${ours} ms/image   Pillow ${pillow_version}: ${pillow} ms/image"
awk -v o="$ours" -v p="$pillow" 'BEGIN { printf "speed vs Pillow: %.2fx (goal > 1)\n", p / o }'
