#!/usr/bin/env bash
# GET /v1/items?limit=20 with a category filter and a price sort, at concurrency 32, against
# pgbench running the same SQL with the same parameters, in one run, on 100 000 items.
# Release build, local PostgreSQL and NATS. Prints figures; never fails on them.
#
#   bench/items.sh [SECONDS]    (default 15)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-15}
nats_port=${NATS_PORT:-4333}
# wrk, not hey: the load generator shares the 2 cores, and wrk needs a fraction of hey's CPU.
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || die "wrk is needed (apt install wrk)"
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
psql_on() { psql "${pg_args[@]}" -d "$1" -qtAc "$2"; }
bash scripts/postgres.sh
psql_on postgres "DROP DATABASE IF EXISTS bench_items" >/dev/null 2>&1
psql_on postgres "CREATE DATABASE bench_items" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p catalog-order
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE=bench_items HTTP_ADDR=127.0.0.1:18282 METRICS_ADDR=127.0.0.1:19282
export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_items"
"$bin/catalog-order" migrate up >/dev/null

log "loading 100 000 items in 50 categories"
psql_on bench_items "
  INSERT INTO categories (id, name, slug)
  SELECT gen_random_uuid(), 'Category ' || n, 'category-' || n FROM generate_series(1, 50) n;
  INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock, created_at)
  SELECT gen_random_uuid(), (SELECT id FROM categories ORDER BY slug OFFSET (n % 50) LIMIT 1),
         'SKU-' || n, 'Item ' || md5(n::text), 'words ' || md5((n * 7)::text),
         (n * 7919) % 100000, 'EUR', n % 17, now() - make_interval(secs => n)
  FROM generate_series(1, 100000) n;
  ANALYZE;" >/dev/null
category=$(psql_on bench_items "SELECT id FROM categories WHERE slug = 'category-7'")

"$bin/catalog-order" >/dev/null &
app_pid=$!
work=$(mktemp -d)
cleanup() {
  kill "$app_pid" 2>/dev/null || true
  wait "$app_pid" 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  psql_on postgres "DROP DATABASE IF EXISTS bench_items" >/dev/null 2>&1 || true
}
trap cleanup EXIT
base="http://$HTTP_ADDR"
until curl -fs -o /dev/null "$base/health/ready"; do sleep 0.1; done

# The statement the service runs for this request (see store/items.rs), LIMIT 20 + 1, with the
# category bound as a parameter as the service binds it (pgbench -M prepared binds :category).
cat >"$work/list.sql" <<'SQL'
SELECT id, category_id, sku, name, description, price_cents, currency, stock, active, created_at, updated_at
FROM items WHERE active AND category_id = :category ORDER BY price_cents, id LIMIT 21;
SQL

# CPU time of the whole machine (user + nice + system + irq + softirq), in clock ticks: both sides
# share the 2 cores, so CPU per operation explains the ratio.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
per_op_us() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }

log "baseline: pgbench, 32 clients, ${seconds}s"
machine_before=$(machine_ticks)
(cd "$work" && pgbench "${pg_args[@]}" -n -M prepared -c 32 -j 2 -T "$seconds" -f list.sql -D "category=$category" \
  -l --log-prefix=pgb bench_items >"$work/pgbench.out" 2>&1)
pg_machine=$(($(machine_ticks) - machine_before))
pg_tps=$(awk '/^tps = / { print $3 }' "$work/pgbench.out" | tail -n 1)
pg_total=$(awk '/number of transactions actually processed/ { print $NF }' "$work/pgbench.out")
# Column 3 of pgbench's log is each transaction's latency in microseconds.
pg_p99=$(cat "$work"/pgb.* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int(NR * 0.99)] / 1000 }')

log "service: GET /v1/items?limit=20&category=…&sort=price, 32 connections, ${seconds}s"
url="$base/v1/items?limit=20&category=$category&sort=price"
curl -fs -o /dev/null "$url"
# CPU the service spends per request (user + system ticks of its process over the run).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$app_pid/stat"; }
ticks_before=$(cpu_ticks)
machine_before=$(machine_ticks)
wrk -t 2 -c 32 -d "${seconds}s" --latency "$url" >"$work/wrk.out"
ticks=$(($(cpu_ticks) - ticks_before))
http_machine=$(($(machine_ticks) - machine_before))
http_rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.out")
# wrk prints "99%  12.34ms" (or us / s).
http_p99=$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$work/wrk.out")
http_total=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
http_bad=$(awk '/Non-2xx/ { print $NF }' "$work/wrk.out")
http_ok=$((http_total - ${http_bad:-0}))
ratio=$(awk -v a="$http_rps" -v b="$pg_tps" 'BEGIN { printf "%.2f", a / b }')

printf '\n%-40s %12s %12s\n' "" "per second" "p99 (ms)"
printf '%-40s %12.0f %12s\n' "pgbench, same SQL" "$pg_tps" "$pg_p99"
printf '%-40s %12.0f %12s\n' "GET /v1/items (200: ${http_ok:-0})" "$http_rps" "$http_p99"
printf '%-40s %12s\n' "ratio (goal >= 0.7)" "$ratio"
printf '\nCPU per operation (µs): machine, pgbench %s · HTTP %s (of which the service %s; the rest\nPostgreSQL and wrk)\n' \
  "$(per_op_us "$pg_machine" "$pg_total")" "$(per_op_us "$http_machine" "$http_total")" "$(per_op_us "$ticks" "$http_total")"
