#!/usr/bin/env bash
# `make bench-report`: the list (hot, cold, 304) and order benchmarks at concurrency 1 to 64,
# start-up and thumbnails, each against its baseline in the same run, written to bench/REPORT.md
# with SVG plots in bench/report/; then the capacity model's measurements (bench/capacity.sh:
# capacity.tsv and docs/capacity.md). Takes about 40 minutes; run it on an otherwise idle machine.
#
#   bench/report.sh [SECONDS]    (default 5 per measurement)
#   RUNS=3                       runs of the list and order benchmarks; the report gives, for
#                                each row, the run with the median ratio (the machine is noisy)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-5}
runs=${RUNS:-3}
out=bench/report
mkdir -p "$out"
rm -f "$out"/results-*.tsv "$out"/items-*.txt "$out"/orders-*.txt
# The raw figures are kept beside the plots: the report can be drawn again from them.
export CONNECTIONS="1 2 4 8 16 32 64"
for run in $(seq "$runs"); do
  log "run $run of $runs: the list and order benchmarks"
  export BENCH_TSV="$out/results-$run.tsv"
  : >"$BENCH_TSV"
  bash bench/items.sh "$seconds" | tee "$out/items-$run.txt"
  bash bench/orders.sh "$seconds" | tee "$out/orders-$run.txt"
done
unset BENCH_TSV
bash bench/startup.sh | tee "$out/startup.txt"
bash bench/thumbnail.sh | tee "$out/thumbnail.txt"
python3 bench/py/report.py "$out/startup.txt" bench "$out"/results-*.tsv
log "wrote bench/REPORT.md and $out/ (figures, plots)"
# Its own concurrency and seconds: the capacity model compares endpoints, not concurrencies.
env -u BENCH_TSV -u CONNECTIONS bash bench/capacity.sh
