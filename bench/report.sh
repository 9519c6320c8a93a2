#!/usr/bin/env bash
# `make bench-report`: the list (hot, cold, 304) and order benchmarks at concurrency 1 to 64,
# start-up and thumbnails, each against its baseline in the same run, written to bench/REPORT.md
# with SVG plots in bench/report/; then the capacity model's measurements (bench/capacity.sh:
# capacity.tsv and docs/capacity.md). Takes about 25 minutes; run it on an otherwise idle machine.
#
#   bench/report.sh [SECONDS]    (default 5 per measurement)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-5}
out=bench/report
mkdir -p "$out"
# The raw figures are kept beside the plots: the report can be drawn again from them.
export BENCH_TSV="$out/results.tsv" CONNECTIONS="1 2 4 8 16 32 64"
: >"$BENCH_TSV"
bash bench/items.sh "$seconds" | tee "$out/items.txt"
bash bench/orders.sh "$seconds" | tee "$out/orders.txt"
bash bench/startup.sh | tee "$out/startup.txt"
bash bench/thumbnail.sh | tee "$out/thumbnail.txt"
python3 bench/py/report.py "$BENCH_TSV" "$out/startup.txt" bench
log "wrote bench/REPORT.md and $out/ (figures, plots)"
# Its own concurrency and seconds: the capacity model compares endpoints, not concurrencies.
env -u BENCH_TSV -u CONNECTIONS bash bench/capacity.sh
