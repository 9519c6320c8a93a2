#!/usr/bin/env bash
# Start-up time (exec → /health/ready 200) and idle RSS of each service, release build as the
# images hold it (static), against the local PostgreSQL and NATS, each with the Tokio workers its
# pod gets: the CPU limit of its Deployment in the chart as rendered with the default values (a
# pod's runtime sizes itself by its cgroup's CPU quota; here WORKER_THREADS stands in for it). A
# benchmark, not a test: it prints figures and never fails on them.
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

# Each service's CPU limit, rounded up, from the rendered Deployments: "auth 1" per line.
bash scripts/tools.sh helm python
workers=$("$(bash scripts/tools.sh path helm)" template shop helm/storefront \
  -f helm/storefront/ci/default.yaml --show-only templates/deployment.yaml 2>/dev/null \
  | "$(bash scripts/tools.sh path python)" -c '
import math, sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d["kind"] == "Deployment":
        c = d["spec"]["template"]["spec"]["containers"][0]
        cpu = str(c["resources"]["limits"]["cpu"])
        print(c["name"], math.ceil(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)))')

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

printf '%-14s %8s %18s %14s\n' service workers "exec→ready (ms)" "idle RSS (MiB)"
for service in auth catalog-order worker; do
  case $service in
    auth) db="$pg/bench_auth" ;;
    catalog-order) db="$pg/bench_catalog" ;;
    *) db="" ;;
  esac
  threads=$(awk -v s="$service" '$1 == s { print $2 }' <<<"$workers")
  [ -n "$threads" ] || die "no CPU limit for $service in the rendered chart"
  times=() rss=()
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    DATABASE_URL=$db HTTP_ADDR=127.0.0.1:18090 METRICS_ADDR=127.0.0.1:19090 WORKER_THREADS=$threads \
      "$bin/$service" >/dev/null &
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
  printf '%-14s %8s %18s %14s\n' "$service" "$threads" "$(printf '%s\n' "${times[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)"
done
