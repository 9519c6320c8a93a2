#!/usr/bin/env bash
# Start-up time (exec → /health/ready 200) and idle RSS of each service, release build as the
# images hold it (static), against the local PostgreSQL and NATS. A benchmark, not a test: it
# prints figures and never fails on them.
#
#   bench/startup.sh [RUNS]     (default 5 runs per service; the median is reported)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

runs=${1:-5}
nats_port=${NATS_PORT:-4333}
bash scripts/postgres.sh bench_auth bench_catalog
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"
trap '[ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"; true' EXIT

# The binaries as the images hold them (static glibc): what runs in production is what is measured.
log "building release binaries (crt-static, as in the images)"
bin=$(release_binaries auth catalog-order worker 2>/dev/null)
pg="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port" NATS_NAMESPACE=bench
DATABASE_URL="$pg/bench_auth" "$bin/auth" migrate up >/dev/null
DATABASE_URL="$pg/bench_catalog" "$bin/catalog-order" migrate up >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

printf '%-14s %18s %14s\n' service "exec→ready (ms)" "idle RSS (MiB)"
for service in auth catalog-order worker; do
  case $service in
    auth) db="$pg/bench_auth" ;;
    catalog-order) db="$pg/bench_catalog" ;;
    *) db="" ;;
  esac
  times=() rss=()
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    DATABASE_URL=$db HTTP_ADDR=127.0.0.1:18090 METRICS_ADDR=127.0.0.1:19090 "$bin/$service" >/dev/null &
    pid=$!
    until curl -fs -o /dev/null http://127.0.0.1:18090/health/ready; do
      kill -0 "$pid" 2>/dev/null || die "$service exited during start-up"
      sleep 0.005
    done
    times+=($(( ($(date +%s%N) - start) / 1000000 )))
    sleep 2 # idle: after start-up allocations settle
    rss+=("$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")")
    kill -TERM "$pid"
    wait "$pid" || true
  done
  printf '%-14s %18s %14s\n' "$service" "$(printf '%s\n' "${times[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)"
done
