#!/usr/bin/env bash
# No-op jobs end to end (outbox insert → relay → JetStream → job runtime → ack) against raw
# JetStream publish + pull-consume of the same message size with the same client, in one run.
# Release build, local PostgreSQL and NATS. Prints figures; never fails on them.
#
#   bench/jobs.sh [JOBS]    (default 5000)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

jobs=${1:-5000}
nats_port=${NATS_PORT:-4333}
pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
bash scripts/postgres.sh
psql "${pg_args[@]}" -d postgres -qtAc "DROP DATABASE IF EXISTS bench_jobs" >/dev/null 2>&1
psql "${pg_args[@]}" -d postgres -qtAc "CREATE DATABASE bench_jobs" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  psql "${pg_args[@]}" -d postgres -qtAc "DROP DATABASE IF EXISTS bench_jobs" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "building release binaries"
cargo build --release --locked -q -p catalog-order -p bench --bin catalog-order --bin jobs-rate
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"
db="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_jobs"
APP_ENV=test DATABASE_URL="$db" NATS_URL="nats://127.0.0.1:$nats_port" "$bin/catalog-order" migrate up >/dev/null

log "$jobs jobs each way"
out=$("$bin/jobs-rate" "$db" "nats://127.0.0.1:$nats_port" "$jobs")
raw=$(grep -oE 'raw_per_s=[0-9]+' <<<"$out" | cut -d= -f2)
ours=$(grep -oE 'jobs_per_s=[0-9]+' <<<"$out" | cut -d= -f2)
echo "raw JetStream publish+consume: ${raw} msg/s   outbox → worker ack: ${ours} jobs/s"
awk -v o="$ours" -v r="$raw" 'BEGIN { printf "ratio: %.2f of raw JetStream\n", o / r }'
