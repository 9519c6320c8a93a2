# shellcheck shell=bash
# What the HTTP-against-pgbench benchmarks share (sourced after scripts/lib.sh): one pgbench run
# and one wrk run, each reduced to the same figures, so every ratio compares like with like.

command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || die "wrk is needed (apt install wrk)"
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

bench_pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")

# Percentile P (0–100) of the numbers on stdin, one per line.
percentile() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100); if (i < 1) i = 1; print a[i] }'; }

# bench_pgbench DB SCRIPT CLIENTS SECONDS [pgbench args…]: prints "tps p50_ms p99_ms failed".
# Runs in the script's directory, with -M prepared (the services use prepared statements too).
bench_pgbench() {
  local db=$1 script=$2 clients=$3 seconds=$4 dir
  shift 4
  dir=$(mktemp -d)
  (cd "$dir" && pgbench "${bench_pg_args[@]}" -n -M prepared -c "$clients" -j "$((clients < 2 ? 1 : 2))" \
    -T "$seconds" -f "$script" -l --log-prefix=pgb "$@" "$db" >"$dir/out" 2>&1) \
    || { cat "$dir/out" >&2; die "pgbench failed"; }
  # Column 3 of pgbench's per-transaction log is its latency in microseconds.
  cat "$dir"/pgb.* | awk '{ print $3 / 1000 }' >"$dir/latencies"
  printf '%s %.2f %.2f %s\n' "$(awk '/^tps = / { print $3 }' "$dir/out" | tail -n 1)" \
    "$(percentile 50 <"$dir/latencies")" "$(percentile 99 <"$dir/latencies")" \
    "$(awk '/number of failed transactions/ { print $5 }' "$dir/out" | grep . || echo 0)"
  rm -rf "$dir"
}

# bench_wrk PID URL CONNECTIONS SECONDS [wrk args…]: prints "rps p50_ms p99_ms cpu_us bad", where
# cpu_us is the CPU the process PID spent per request and bad the answers neither 2xx nor 3xx.
bench_wrk() {
  local pid=$1 url=$2 connections=$3 seconds=$4 out before ticks total
  shift 4
  out=$(mktemp)
  before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  wrk -t "$((connections < 2 ? 1 : 2))" -c "$connections" -d "${seconds}s" --latency "$@" "$url" >"$out"
  ticks=$(($(awk '{ print $14 + $15 }' "/proc/$pid/stat") - before))
  total=$(awk '/requests in/ { print $1 }' "$out")
  # wrk prints "50%  12.34ms" (or us / s).
  ms() { awk -v q="$1" '$1 == q { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$out"; }
  printf '%s %s %s %s %s\n' "$(awk '/^Requests\/sec/ { print $2 }' "$out")" "$(ms 50%)" "$(ms 99%)" \
    "$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$total" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')" \
    "$(awk '/Non-2xx or 3xx/ { print $NF }' "$out" | grep . || echo 0)"
  rm -f "$out"
}

# bench_tsv SCENARIO CONNECTIONS RPS P50 P99 BASELINE_RPS: one row of $BENCH_TSV (when set), read
# by bench/report.sh.
bench_tsv() {
  [ -n "${BENCH_TSV:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_TSV"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
