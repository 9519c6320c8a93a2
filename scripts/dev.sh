#!/usr/bin/env bash
# The whole stack on this machine: PostgreSQL and a current NATS (found or started), databases
# created and migrated, the three services in the dev profile with prefixed, coloured logs.
# Ctrl-C stops everything this script started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"
use_pinned_rust

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}
nats_port=${NATS_PORT:-4333}

bash scripts/postgres.sh auth catalog
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building the services"
cargo build --bins

export APP_ENV=dev
export NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE="${NATS_NAMESPACE:-storefront}"
bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
db_url() { echo "postgres://$pg_user${PGPASSWORD:+:$PGPASSWORD}@$pg_host:$pg_port/$1"; }

DATABASE_URL=$(db_url auth) "$bin/auth" migrate up
DATABASE_URL=$(db_url catalog) "$bin/catalog-order" migrate up

cleanup() {
  trap - INT EXIT
  # The services run in subshells piping into sed; signal the whole process group (as Ctrl-C
  # does) while this script ignores the signal, so it can stop NATS afterwards.
  trap '' TERM
  log "stopping"
  kill -TERM 0 2>/dev/null || true
  wait 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  exit 0
}
trap cleanup INT TERM EXIT

run() { # NAME COLOUR COMMAND...
  local name=$1 colour=$2
  shift 2
  ("$@" 2>&1 | sed -u "s/^/$(printf '\033[%sm%-13s|\033[0m ' "$colour" "$name")/") &
}

run auth 32 env DATABASE_URL="$(db_url auth)" "$bin/auth"
run catalog-order 35 env DATABASE_URL="$(db_url catalog)" "$bin/catalog-order"
run worker 36 "$bin/worker"

for port in 8081 8082 8083; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
cat >&2 <<MSG

  auth           http://127.0.0.1:8081   metrics http://127.0.0.1:9181/metrics
  catalog-order  http://127.0.0.1:8082   metrics http://127.0.0.1:9182/metrics
  worker         http://127.0.0.1:8083   metrics http://127.0.0.1:9183/metrics
  readiness      curl http://127.0.0.1:8081/health/ready
  NATS           $NATS_URL (namespace $NATS_NAMESPACE)

  Ctrl-C stops everything.
MSG
wait
