# shellcheck shell=bash
# What the HTTP-against-pgbench benchmarks share (sourced after scripts/lib.sh): one pgbench run
# and one wrk run, each reduced to the same figures, so every ratio compares like with like.

command -v wrk >/dev/null || apt_install wrk
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

bench_pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
# The replicas bench_replicas started (bench_stop ends them) and their HTTP ports.
bench_pids=() bench_ports=()

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

# bench_replicas BIN PORT [NAME=VALUE…]: start BIN the way the chart runs it, with the settings
# given: $BENCH_REPLICAS replicas (2, the chart's minimum), each with one Tokio worker (what a pod's
# 1-CPU limit gives it) and one CURSOR_SECRET (the chart's Secret; without it each replica signs
# its cursors, and so tags its pages' ETags, with a key of its own), the first serving on PORT,
# the next on PORT+1 … (metrics on PORT+1000 …). Returns once every one is ready. Sets bench_pids
# and bench_ports, which bench_wrk uses.
bench_replicas() {
  local bin=$1 port=$2 secret i
  shift 2
  secret=$(head -c 24 /dev/urandom | base64)
  bench_pids=() bench_ports=()
  for ((i = 0; i < ${BENCH_REPLICAS:-2}; i++)); do
    env "$@" HTTP_ADDR="127.0.0.1:$((port + i))" METRICS_ADDR="127.0.0.1:$((port + 1000 + i))" \
      WORKER_THREADS="${BENCH_WORKER_THREADS:-1}" CURSOR_SECRET="$secret" "$bin" >/dev/null &
    bench_pids+=("$!")
    bench_ports+=("$((port + i))")
  done
  for ((i = 0; i < ${#bench_ports[@]}; i++)); do
    bench_ready "http://127.0.0.1:${bench_ports[i]}" "${bench_pids[i]}" "$bin on ${bench_ports[i]}"
  done
}

# bench_stop: end the replicas of bench_replicas (for a script's cleanup).
bench_stop() {
  [ ${#bench_pids[@]} -gt 0 ] || return 0
  kill "${bench_pids[@]}" 2>/dev/null || true
  wait "${bench_pids[@]}" 2>/dev/null || true
}

# bench_ready URL PID NAME: wait until URL/health/ready answers 200; die if PID exits first or
# after 30 s.
bench_ready() {
  local _
  for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$1/health/ready" && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited before it was ready"
    sleep 0.1
  done
  die "$3 is not ready after 30s"
}

# bench_wrk URL CONNECTIONS SECONDS [wrk args…]: prints "rps p50_ms p99_ms cpu_us bad", where
# cpu_us is the CPU the replicas of bench_replicas spent per request and bad the answers neither
# 2xx nor 3xx. wrk's threads take the replicas in turn (thread 1 the first, thread 2 the
# second …), so the connections are spread evenly, as the ingress's round robin spreads them; a
# script given with -s is kept, and its setup() still runs.
bench_wrk() {
  local url=$1 connections=$2 seconds=$3 out script before ticks total
  shift 3
  local args=() given=""
  while [ $# -gt 0 ]; do
    if [ "$1" = -s ]; then given=$2; shift 2; else args+=("$1"); shift; fi
  done
  out=$(mktemp)
  script=$(mktemp --suffix=.lua)
  # The spreading, the caller's script if any, then a setup() that spreads and calls the caller's.
  {
    printf 'local bench_ports, bench_threads = { %s }, 0\n' "$(printf '"%s", ' "${bench_ports[@]}")"
    printf '%s\n' 'local function bench_spread(thread)' \
      '  thread.addr = wrk.lookup("127.0.0.1", bench_ports[bench_threads % #bench_ports + 1])[1]' \
      '  bench_threads = bench_threads + 1' \
      'end'
    [ -z "$given" ] || cat "$given"
    printf '%s\n' 'local bench_setup = setup' \
      'function setup(thread)' '  bench_spread(thread)' '  if bench_setup then bench_setup(thread) end' 'end'
  } >"$script"
  before=$(bench_ticks)
  wrk -t "$((connections < 2 ? 1 : 2))" -c "$connections" -d "${seconds}s" --latency -s "$script" "${args[@]}" "$url" >"$out"
  ticks=$(($(bench_ticks) - before))
  total=$(awk '/requests in/ { print $1 }' "$out")
  # wrk prints "50%  12.34ms" (or us / s).
  ms() { awk -v q="$1" '$1 == q { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$out"; }
  printf '%s %s %s %s %s\n' "$(awk '/^Requests\/sec/ { print $2 }' "$out")" "$(ms 50%)" "$(ms 99%)" \
    "$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$total" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')" \
    "$(awk '/Non-2xx or 3xx/ { print $NF }' "$out" | grep . || echo 0)"
  rm -f "$out" "$script"
}

# CPU ticks (user + system) the replicas have used so far.
bench_ticks() {
  local pid sum=0
  for pid in "${bench_pids[@]}"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$sum"
}

# bench_tsv SCENARIO CONNECTIONS RPS P50 P99 BASELINE_RPS: one row of $BENCH_TSV (when set), read
# by bench/report.sh.
bench_tsv() {
  [ -n "${BENCH_TSV:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_TSV"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
