#!/usr/bin/env bash
# The worker's thumbnail job (a 4000×3000 JPEG decoded at the smallest DCT scale that still covers
# the largest size, resized to thumb/small/medium with Lanczos3, encoded JPEG q85) against Pillow
# on its best path: `Image.draft("RGB", size)` with the largest variant's size, so libjpeg decodes
# at 1/8, 1/4 or 1/2 scale too (what Image.thumbnail() does), then the same LANCZOS resizes and
# q85 encodes. Same file, same run, one core each. Goal: >= 1.5x Pillow with draft(). Both sides
# print their variants' width×height and write their variants; a size mismatch, or pictures that
# differ by more than 2 of 255 per channel on average, is printed loudly and fails the script
# (the speed figures never do).
#
#   bench/thumbnail.sh [ROUNDS]    (default 15 per batch)
#   BATCHES=3                      turns each side takes; the batch with the median ratio is reported
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
need_nasm
log "building release binaries"
cargo build --release --locked -q -p bench --bin thumbnail-rate
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

photo=$(mktemp --suffix=.jpg)
out=$(mktemp -d)
trap 'rm -rf "$photo" "$out"' EXIT
mkdir "$out/worker" "$out/pillow"
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
# libjpeg-turbo's x86 SIMD is assembled only where nasm was found when mozjpeg-sys was built.
# (grep reads all of nm's output: with -q it would stop early and, under pipefail, nm's SIGPIPE
# would read as "not found".)
if nm "$bin/thumbnail-rate" 2>/dev/null | grep 'jsimd_.*_avx2' >/dev/null; then
  echo "worker's libjpeg-turbo: with its SIMD (nasm)"
else
  echo "worker's libjpeg-turbo: plain C, not what the images run (no nasm at build time: apt install nasm, then cargo clean -p mozjpeg-sys)"
fi

# The two sides take turns, BATCHES times, so that a slow spell of this shared machine falls on
# both: each batch gives a ratio, and the figure is the batch with the median ratio.
pillow_version=$("$venv/bin/python" -c 'import PIL; print(PIL.__version__)')
batches=()
for _ in $(seq "${BATCHES:-3}"); do
  ours_out=$(taskset -c 0 "$bin/thumbnail-rate" "$photo" "$rounds" "$sizes" "$out/worker")
  pillow_out=$(taskset -c 0 "$venv/bin/python" bench/py/thumbnail_pillow.py "$photo" "$rounds" "$sizes" "$out/pillow")
  ours=$(sed -n 's/^median_ms=//p' <<<"$ours_out")
  pillow=$(sed -n 's/^median_ms=//p' <<<"$pillow_out")
  batches+=("$(awk -v o="$ours" -v p="$pillow" 'BEGIN { printf "%.2f %s %s", p / o, o, p }')")
done
read -r ratio ours pillow < <(printf '%s\n' "${batches[@]}" | sort -n | sed -n "$(((${#batches[@]} + 1) / 2))p")
ours_sizes=$(sed -n 's/^sizes=//p' <<<"$ours_out")
pillow_sizes=$(sed -n 's/^sizes=//p' <<<"$pillow_out")
echo "output sizes  worker: ${ours_sizes}   Pillow: ${pillow_sizes}"
echo "thumbnail (3 sizes) worker: ${ours} ms/image   Pillow ${pillow_version} with draft(): ${pillow} ms/image"
echo "speed vs Pillow draft(): ${ratio}x (goal >= 1.5); every batch: $(printf '%s\n' "${batches[@]}" | cut -d' ' -f1 | sort -n | paste -sd' ')"
if [ -z "$ours_sizes" ] || [ "$ours_sizes" != "$pillow_sizes" ]; then
  printf '\033[1;31m!!! OUTPUT SIZES DIFFER: worker %s, Pillow %s — the comparison is not like for like\033[0m\n' \
    "${ours_sizes:-none}" "${pillow_sizes:-none}" >&2
  exit 1
fi
# The pictures themselves: each variant of the worker against Pillow's (mean absolute difference
# per channel, of 255) and both files' bytes.
"$venv/bin/python" - "$out" "$sizes" <<'PY'
import os, sys
from PIL import Image, ImageChops, ImageStat
out, sizes = sys.argv[1], sys.argv[2]
worst = 0.0
for name in (part.split("=")[0] for part in sizes.split(",")):
    ours, theirs = (f"{out}/{side}/{name}.jpg" for side in ("worker", "pillow"))
    difference = ImageChops.difference(Image.open(ours).convert("RGB"), Image.open(theirs).convert("RGB"))
    mean = sum(ImageStat.Stat(difference).mean) / 3
    worst = max(worst, mean)
    print(f"{name:<8} differs from Pillow's by {mean:.2f}/255 on average; "
          f"{os.path.getsize(ours)} bytes (Pillow {os.path.getsize(theirs)})")
if worst > 2.0:
    sys.exit(f"\033[1;31m!!! THE PICTURES DIFFER ({worst:.2f}/255): not like for like\033[0m")
PY
