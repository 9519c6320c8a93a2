#!/usr/bin/env bash
# The whole test suite against real PostgreSQL and NATS: finds or starts both (NATS on its own
# port, 4333 by default), then runs every test of the workspace. Extra arguments go to cargo test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

nats_port=${TEST_NATS_PORT:-4333}
bash scripts/postgres.sh
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"
stop_nats() { [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"; true; }
trap stop_nats EXIT

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/postgres}
export TEST_NATS_URL="nats://127.0.0.1:$nats_port"
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

cargo test --workspace --locked "$@"
