#!/usr/bin/env bash
# POST /v1/orders (two lines, an Idempotency-Key, the confirmation job in the outbox) against
# pgbench replaying the statements of that transaction (store/customers.rs, idempotency.rs,
# orders.rs, jobs.rs), in one run, at concurrency 32: 200 customers, each order two random items
# of 1 000 (so row locks on items are rarely shared; docs/capacity.md's hot-item case is not this).
# Release build (auth issues the tokens; catalog-order as the chart runs it, two replicas of one
# worker each: bench/lib.sh's bench_replicas), local PostgreSQL and NATS. Prints figures; never
# fails on them.
#
#   bench/orders.sh [SECONDS]    (default 10)
#   CONNECTIONS="1 8 32"         concurrencies to measure at (default 32)
#   BENCH_TSV=file               also append rows for bench/report.sh (bench/lib.sh, bench_tsv)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds=${1:-10}
connections=${CONNECTIONS:-32}
customers=200
items=1000
nats_port=${NATS_PORT:-4333}
psql_on() { psql "${bench_pg_args[@]}" -d "$1" -qtAc "$2"; }
pg="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}"
bash scripts/postgres.sh
for db in bench_orders bench_orders_auth; do
  psql_on postgres "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  psql_on postgres "CREATE DATABASE $db" >/dev/null
done
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p auth -p catalog-order
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port" NATS_NAMESPACE=bench_orders
# The write budget is not what is measured here.
export RATE_LIMIT_WRITE_PER_MINUTE=100000000 RATE_LIMIT_WRITE_BURST=100000000
export RATE_LIMIT_AUTH_PER_MINUTE=100000000 RATE_LIMIT_AUTH_BURST=100000000
auth_env=(DATABASE_URL="$pg/bench_orders_auth" HTTP_ADDR=127.0.0.1:18381 METRICS_ADDR=127.0.0.1:19381)
shop_env=(DATABASE_URL="$pg/bench_orders" AUTH_JWKS_URL=http://127.0.0.1:18381/.well-known/jwks.json)
env "${auth_env[@]}" "$bin/auth" migrate up >/dev/null
env "${shop_env[@]}" "$bin/catalog-order" migrate up >/dev/null

log "loading $items items (ids md5(n)::uuid, so pgbench can name them)"
psql_on bench_orders "
  INSERT INTO categories (id, name, slug) VALUES (gen_random_uuid(), 'Bench', 'bench');
  INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock)
  SELECT md5(n::text)::uuid, (SELECT id FROM categories), 'SKU-' || n, 'Item ' || n, 'words',
         100 + n, 'EUR', 1000000000
  FROM generate_series(1, $items) n;
  ANALYZE;" >/dev/null

env "${auth_env[@]}" "$bin/auth" >/dev/null &
auth_pid=$!
work=$(mktemp -d)
cleanup() {
  bench_stop
  kill "$auth_pid" 2>/dev/null || true
  wait "$auth_pid" 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  for db in bench_orders bench_orders_auth; do
    psql_on postgres "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
auth=http://127.0.0.1:18381
bench_ready "$auth" "$auth_pid" auth
bench_replicas "$bin/catalog-order" 18382 "${shop_env[@]}"
base="http://127.0.0.1:${bench_ports[0]}"

log "$customers customers sign up"
for ((c = 1; c <= customers; c++)); do
  body="{\"email\":\"bench$c@example.com\",\"password\":\"correct horse battery staple\"}"
  curl -fs -o /dev/null -XPOST "$auth/v1/auth/register" -H 'content-type: application/json' -d "$body"
  # printf: the answer has no final newline, so sed's output has none either.
  printf '%s\n' "$(curl -fs -XPOST "$auth/v1/auth/login" -H 'content-type: application/json' -d "$body" \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')" >>"$work/tokens"
done
[ "$(grep -c . "$work/tokens")" = "$customers" ] || die "not every customer got a token"
psql_on bench_orders "SELECT id FROM items ORDER BY sku" >"$work/items"

# wrk: a random customer, two different random items, a new Idempotency-Key every request.
cat >"$work/orders.lua" <<LUA
-- thread_id is a global of each thread's own Lua state, set by setup() (a local would hide it).
local tokens, items, n = {}, {}, 0
local next_id = 0
thread_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function init(args)
  for line in io.lines("$work/tokens") do tokens[#tokens + 1] = line end
  for line in io.lines("$work/items") do items[#items + 1] = line end
  math.randomseed(os.time() * 100 + thread_id)
end
request = function()
  n = n + 1
  local a = math.random(1, #items)
  local b = a % #items + 1
  local body = string.format('{"lines":[{"item_id":"%s","quantity":1},{"item_id":"%s","quantity":1}]}', items[a], items[b])
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[math.random(1, #tokens)],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%d-%d-%d", thread_id, os.time(), n),
  }
  return wrk.format("POST", "/v1/orders", headers, body)
end
LUA
r=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$base/v1/orders" -H "Authorization: Bearer $(head -n 1 "$work/tokens")" \
  -H 'content-type: application/json' -H 'Idempotency-Key: bench-probe' \
  -d "{\"lines\":[{\"item_id\":\"$(sed -n 1p "$work/items")\",\"quantity\":1}]}")
[ "$r" = 201 ] || die "placing an order answered $r"

# The transaction place() runs (usecases/orders.rs), statement for statement, with the same
# shapes of parameters: the customer row, the key claimed, the items locked and taken, the order,
# its lines, its e-mail job, the key's answer.
cat >"$work/order.sql" <<'SQL'
\set c random(1, 200)
\set a random(1, 1000)
\set b 1 + :a % 1000
\set k random(1, 1000000000000)
BEGIN;
INSERT INTO customers (id) VALUES (md5('customer' || :c)::uuid) ON CONFLICT (id) DO UPDATE SET id = excluded.id RETURNING id, full_name, phone, address_line, city, postal_code, country, anonymised_at, created_at, updated_at;
DELETE FROM idempotency_keys WHERE user_id = md5('customer' || :c)::uuid AND key = 'k' || :k AND created_at < now() - make_interval(hours => 24);
INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (md5('customer' || :c)::uuid, 'k' || :k, sha256(('k' || :k)::bytea)) ON CONFLICT DO NOTHING;
SELECT id, name, price_cents, currency, stock, active FROM items WHERE id = ANY(ARRAY[md5(:a::text)::uuid, md5(:b::text)::uuid]) ORDER BY id FOR UPDATE;
UPDATE items i SET stock = i.stock - l.quantity, updated_at = now() FROM unnest(ARRAY[md5(:a::text)::uuid, md5(:b::text)::uuid], ARRAY[1, 1]::int4[]) AS l (id, quantity) WHERE i.id = l.id AND i.stock >= l.quantity;
INSERT INTO orders (id, customer_id, status, total_cents, currency) VALUES (md5('order' || :client_id || '-' || :k)::uuid, md5('customer' || :c)::uuid, 'pending', 300, 'EUR') RETURNING id, customer_id, status, total_cents, currency, created_at, updated_at;
INSERT INTO order_lines (order_id, line_no, item_id, name, quantity, unit_price_cents) SELECT md5('order' || :client_id || '-' || :k)::uuid, l.n::int4, l.item_id, l.name, l.quantity, l.price FROM unnest(ARRAY[md5(:a::text)::uuid, md5(:b::text)::uuid], ARRAY['Item a', 'Item b'], ARRAY[1, 1]::int4[], ARRAY[150, 150]::int8[]) WITH ORDINALITY AS l (item_id, name, quantity, price, n) RETURNING order_id, line_no, item_id, name, quantity, unit_price_cents;
INSERT INTO jobs (id, kind, payload, owner_id, request_id, traceparent) VALUES (gen_random_uuid(), 'email.order_confirmation', '{"order_id":"00000000-0000-0000-0000-000000000000","customer_id":"00000000-0000-0000-0000-000000000000","email":"bench1@example.com","total_cents":300,"currency":"EUR","lines":[{"name":"Item a","quantity":1,"unit_price_cents":150},{"name":"Item b","quantity":1,"unit_price_cents":150}]}', md5('customer' || :c)::uuid, 'bench', NULL) RETURNING id;
UPDATE idempotency_keys SET status_code = 201, response_body = convert_to(repeat('x', 600), 'UTF8') WHERE user_id = md5('customer' || :c)::uuid AND key = 'k' || :k;
COMMIT;
SQL

row() { printf '%-44s %5s %11.0f %9s %9s %8s %8s %s\n' "$@"; }
printf '\n%-44s %5s %11s %9s %9s %8s %8s %s\n' "" "conns" "per second" "p50 (ms)" "p99 (ms)" "µs CPU" "ratio" "goal"
for c in $connections; do
  log "concurrency $c: pgbench and wrk, ${seconds}s each"
  read -r pg_tps pg_p50 pg_p99 pg_failed < <(bench_pgbench bench_orders "$work/order.sql" "$c" "$seconds")
  before=$(psql_on bench_orders "SELECT count(*) FROM orders")
  read -r rps p50 p99 cpu bad < <(bench_wrk "$base/v1/orders" "$c" "$seconds" -s "$work/orders.lua")
  placed=$(($(psql_on bench_orders "SELECT count(*) FROM orders") - before))
  row "pgbench, the order transaction" "$c" "$pg_tps" "$pg_p50" "$pg_p99" "" "" ""
  row "POST /v1/orders (2 lines, Idempotency-Key)" "$c" "$rps" "$p50" "$p99" "$cpu" "$(ratio "$rps" "$pg_tps")" ">= 0.5 × pgbench"
  [ "$bad$pg_failed" = 00 ] || printf 'not 201: %s; pgbench failed transactions: %s\n' "$bad" "$pg_failed"
  printf '%-44s %5s %11s\n' "orders placed during the run (each request one)" "$c" "$placed"
  bench_tsv "orders" "$c" "$rps" "$p50" "$p99" "$pg_tps"
  bench_tsv "pgbench, order transaction" "$c" "$pg_tps" "$pg_p50" "$pg_p99" "$pg_tps"
done
