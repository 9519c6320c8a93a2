#!/usr/bin/env bash
# The measurements of the capacity model (docs/capacity.md): for each public endpoint of the
# traffic mix, wrk at one concurrency for a few seconds against the release services, and per
# request the service's CPU (bench_wrk), PostgreSQL's CPU (the backends serving the benchmark's
# databases, read from /proc) and the requests per second; per job kind, the worker's CPU, the
# CPU catalog-order spends applying the job's events and PostgreSQL's. Also the hot-item limit:
# orders that all take the same two items. Catalog reads are measured both answered from the
# replica's cache (hit) and with the cache off (miss). 100 000 items (skewed words, as
# bench/search.sh's catalog). Writes bench/report/capacity.tsv, then docs/capacity.md's generated
# sections (bench/py/capacity.py). About 4 minutes once built; run it on an otherwise idle machine (the
# machine's load before and after is recorded with the figures). Never fails on the figures.
#
#   bench/capacity.sh [SECONDS]    (default 5 per measurement)
#   CONNECTIONS=32                 concurrency of every measurement
#   CAPACITY_ITEMS=100000          catalog size
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds=${1:-5}
connections=${CONNECTIONS:-32}
items=${CAPACITY_ITEMS:-100000}
customers=50
nats_port=${NATS_PORT:-4337}
tsv=bench/report/capacity.tsv
hz=$(getconf CLK_TCK)
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "usage: bench/capacity.sh [SECONDS]"
began=$SECONDS
load_before=$(cut -d' ' -f1 /proc/loadavg)

psql_on() { psql "${bench_pg_args[@]}" -d "$1" -qtAc "$2"; }
pg="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}"
bash scripts/postgres.sh
for db in bench_capacity bench_capacity_auth; do
  psql_on postgres "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  psql_on postgres "CREATE DATABASE $db" >/dev/null
done
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
NATS_FRESH=1 bash scripts/nats.sh start "$nats_port"

# The upload: a photo-like 1600×1200 JPEG, made with Pillow as bench/thumbnail.sh makes its photo.
venv="$ROOT/.tools/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  log "installing Pillow from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pillow
fi

need_nasm
log "building release binaries"
cargo build --release --locked -q -p auth -p catalog-order -p worker
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port" NATS_NAMESPACE=bench_capacity
# Budgets are not what is measured; a payment's fake webhook (outcome `delay`) comes after the run.
export RATE_LIMIT_WRITE_PER_MINUTE=100000000 RATE_LIMIT_WRITE_BURST=100000000
export RATE_LIMIT_AUTH_PER_MINUTE=100000000 RATE_LIMIT_AUTH_BURST=100000000 PAYMENT_FAKE_DELAY=1h
auth_env=(DATABASE_URL="$pg/bench_capacity_auth" HTTP_ADDR=127.0.0.1:18481 METRICS_ADDR=127.0.0.1:19481)
shop_env=(DATABASE_URL="$pg/bench_capacity" HTTP_ADDR=127.0.0.1:18482 METRICS_ADDR=127.0.0.1:19482
  AUTH_JWKS_URL=http://127.0.0.1:18481/.well-known/jwks.json)
worker_env=(HTTP_ADDR=127.0.0.1:18483 METRICS_ADDR=127.0.0.1:19483 EMAIL_TRANSPORT=log SCHEDULER_ENABLED=false)
env "${auth_env[@]}" "$bin/auth" migrate up >/dev/null
env "${shop_env[@]}" "$bin/catalog-order" migrate up >/dev/null

log "generating $items items in 50 categories (skewed words)"
psql "${bench_pg_args[@]}" -d bench_capacity -q -v ON_ERROR_STOP=1 \
  -f services/catalog-order/tests/fixtures/skewed_catalog.sql >/dev/null
psql_on bench_capacity "SELECT skewed_catalog($items, 50)" >/dev/null
# Orders take items 1–1 000 (the hot-item run items 1 and 2): active, and stock enough.
psql_on bench_capacity "UPDATE items SET active = true, stock = 1000000000
  WHERE sku IN (SELECT 'SKU-' || n FROM generate_series(1, 1000) n)" >/dev/null
psql_on bench_capacity "VACUUM ANALYZE items" >/dev/null

work=$(mktemp -d)
auth_pid='' shop_pid='' worker_pid=''
stop() { # PID…: stop and reap
  local pid
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  stop "$worker_pid" "$shop_pid" "$auth_pid"
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  for db in bench_capacity bench_capacity_auth; do
    psql_on postgres "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
ready() { bench_ready "$1" "$2" "$3 (its log: $work/$3.log)"; } # URL PID NAME
auth=http://127.0.0.1:18481
base=http://127.0.0.1:18482
env "${auth_env[@]}" "$bin/auth" >"$work/auth.log" 2>&1 &
auth_pid=$!
ready "$auth" "$auth_pid" auth
start_shop() { # [ENV=VALUE…]: catalog-order, with these settings besides
  env "${shop_env[@]}" "$@" "$bin/catalog-order" >>"$work/catalog-order.log" 2>&1 &
  shop_pid=$!
  ready "$base" "$shop_pid" catalog-order
}
start_shop
start_worker() {
  env "${worker_env[@]}" "$bin/worker" >>"$work/worker.log" 2>&1 &
  worker_pid=$!
  ready http://127.0.0.1:18483 "$worker_pid" worker
}

log "$customers customers and an admin sign up"
credentials() { printf '{"email":"%s","password":"correct horse battery staple"}' "$1"; }
login() { # EMAIL → an access token
  curl -fs -XPOST "$auth/v1/auth/login" -H 'content-type: application/json' -d "$(credentials "$1")" \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
sign_up() { # EMAIL → "user_id access_token"
  local id
  id=$(curl -fs -XPOST "$auth/v1/auth/register" -H 'content-type: application/json' -d "$(credentials "$1")" \
    | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
  printf '%s %s\n' "$id" "$(login "$1")"
}
for ((c = 1; c <= customers; c++)); do sign_up "bench$c@example.com"; done >"$work/customers"
cut -d' ' -f2 "$work/customers" >"$work/tokens"
[ "$(awk 'NF == 2' "$work/customers" | wc -l)" = "$customers" ] || die "not every customer got a token"
sign_up admin@example.com >/dev/null
psql_on bench_capacity_auth "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'" >/dev/null
# Logged in again: the role is in the token.
admin=$(login admin@example.com)
[ -n "$admin" ] || die "the admin got no token"

psql_on bench_capacity "SELECT id FROM items WHERE sku IN (SELECT 'SKU-' || n FROM generate_series(1, 1000) n) ORDER BY sku" >"$work/order-items"
psql_on bench_capacity "SELECT id FROM items WHERE sku IN ('SKU-1', 'SKU-2') ORDER BY sku" >"$work/hot-items"
psql_on bench_capacity "SELECT id FROM items WHERE active ORDER BY random()" >"$work/all-items"
head -n 1000 "$work/all-items" >"$work/hot-reads"
psql_on bench_capacity "SELECT skewed_word(k) FROM generate_series(100, 299) k" >"$work/words"
category=$(psql_on bench_capacity "SELECT id FROM categories WHERE slug = 'category-7'")
"$venv/bin/python" - "$work/photo.jpg" <<'PY'
import sys
from PIL import Image, ImageFilter
w, h = 1600, 1200
noise = Image.effect_noise((w, h), 40).convert("RGB")
gradient = Image.linear_gradient("L").resize((w, h)).convert("RGB")
Image.blend(noise, gradient, 0.5).filter(ImageFilter.GaussianBlur(1)).save(sys.argv[1], quality=85)
PY

# wrk scripts. thread_id is a global of each thread's own Lua state, set by setup() (a local
# would hide it); every thread draws its own random sequence.
lua_head() { # FILE…: each line of each file into a table named after it (lines_1, lines_2 …)
  cat <<'LUA'
local next_id = 0
thread_id = 0
n = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
local function read(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = line end
  return t
end
local function key() n = n + 1; return string.format("cap-%d-%d-%d", thread_id, os.time(), n) end
LUA
}
{
  lua_head
  cat <<LUA
function init(args)
  tokens, items = read("$work/tokens"), read("@ITEMS@")
  math.randomseed(os.time() * 100 + thread_id)
end
request = function()
  local a = math.random(1, #items)
  local b = a % #items + 1
  local body = string.format('{"lines":[{"item_id":"%s","quantity":1},{"item_id":"%s","quantity":1}]}', items[a], items[b])
  return wrk.format("POST", "/v1/orders", { ["Authorization"] = "Bearer " .. tokens[math.random(1, #tokens)],
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() }, body)
end
LUA
} >"$work/orders.lua.in"
sed "s|@ITEMS@|$work/order-items|" "$work/orders.lua.in" >"$work/orders.lua"
sed "s|@ITEMS@|$work/hot-items|" "$work/orders.lua.in" >"$work/hot-orders.lua"
random_path() { # NAME LINES_FILE PREFIX SUFFIX: GET PREFIX<random line>SUFFIX
  { lua_head; cat <<LUA; } >"$work/$1.lua"
function init(args)
  lines = read("$2")
  math.randomseed(os.time() * 100 + thread_id)
end
request = function() return wrk.format(nil, "$3" .. lines[math.random(1, #lines)] .. "$4") end
LUA
}
random_path hot-item "$work/hot-reads" /v1/items/ ""
random_path item "$work/all-items" /v1/items/ ""
random_path search "$work/words" "/v1/items?limit=20&q=" ""
random_path facets "$work/words" "/v1/items/facets?q=" ""
# A list that misses whatever the cache holds: a different min_price each time (bench/items.sh).
{ lua_head; cat <<'LUA'; } >"$work/list.lua"
function init(args) math.randomseed(os.time() * 100 + thread_id) end
request = function() return wrk.format(nil, wrk.path .. "&min_price=" .. math.random(0, 99999)) end
LUA
bearer_lua() { # NAME LINES_FILE METHOD PATH_OF(line) BODY: each request a random line as "token id"
  { lua_head; cat <<LUA; } >"$work/$1.lua"
function init(args)
  lines = read("$2")
  math.randomseed(os.time() * 100 + thread_id)
end
request = function()
  local token, id = lines[math.random(1, #lines)]:match("(%S+) ?(%S*)")
  return wrk.format("$3", $4, { ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() }, $5)
end
LUA
}
bearer_lua my-orders "$work/tokens" GET '"/v1/orders"' nil
bearer_lua me "$work/tokens" GET '"/v1/auth/me"' nil

row() { printf '%-44s %-5s %10.0f %9s %9s %10s %10s %s\n' "$@"; }
printf '\n%-44s %-5s %10s %9s %9s %10s %10s %s\n' "" cache "per second" "p50 (ms)" "p99 (ms)" "µs service" "µs pg" "non-2xx"
{
  printf 'kind\tname\tcache\tconnections\trps\tp50_ms\tp99_ms\tcpu_us\tpostgres_cpu_us\tevents_cpu_us\tbad\n'
} >"$work/capacity.tsv"

# CPU ticks of the PostgreSQL backends serving the benchmark's databases, "pid ticks" a line (a
# backend's process title names its database; other databases' backends, and PostgreSQL's own
# background processes, are left out).
pg_backends() {
  local pid
  for pid in $(pgrep -f '^postgres: ([^ ]+: )?[^ ]+ bench_capacity(_auth)? ' || true); do
    awk -v p="$pid" '{ print p, $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true
  done
}
# Ticks the backends spent since "$work/pg.before" (a backend started since counts whole).
pg_since() {
  pg_backends >"$work/pg.after"
  awk 'NR == FNR { before[$1] = $2; next } { t += $2 - ($1 in before ? before[$1] : 0) } END { print t + 0 }' \
    "$work/pg.before" "$work/pg.after"
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
per() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }'; }

# measure NAME CACHE PID PATH [wrk args…]: one wrk run against the service PID; a row of the TSV.
measure() {
  local name=$1 cache=$2 pid=$3 url=$4 rps p50 p99 cpu bad pg_us hostport
  shift 4
  pg_backends >"$work/pg.before"
  # One process (its default workers), not bench_replicas: the model prices a request's CPU.
  # bench_wrk sends to bench_ports: the port of URL's own service (auth's rows go to auth).
  hostport=${url#*://}
  hostport=${hostport%%/*}
  bench_pids=("$pid") bench_ports=("${hostport##*:}")
  read -r rps p50 p99 cpu bad < <(bench_wrk "$url" "$connections" "$seconds" "$@")
  pg_us=$(per "$(pg_since)" "$(awk -v r="$rps" -v s="$seconds" 'BEGIN { print r * s }')")
  row "$name" "$cache" "$rps" "$p50" "$p99" "$cpu" "$pg_us" "$bad"
  printf 'request\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t-\t%s\n' "$name" "$cache" "$connections" "$rps" \
    "$p50" "$p99" "$cpu" "$pg_us" "$bad" >>"$work/capacity.tsv"
}
warm() { wrk -t 2 -c "$connections" -d 2s "$@" >/dev/null; }

log "catalog reads answered from the cache (each warmed first), and the HTTP stack's floor"
measure "GET /health/live" - "$shop_pid" "$base/health/live"
warm "$base/v1/categories"
measure "GET /v1/categories" hit "$shop_pid" "$base/v1/categories"
list="$base/v1/items?limit=20&category=$category&sort=price"
warm "$list"
measure "GET /v1/items" hit "$shop_pid" "$list"
warm -s "$work/hot-item.lua" "$base"
measure "GET /v1/items/{id}" hit "$shop_pid" "$base" -s "$work/hot-item.lua"
warm "$base/v1/items?limit=20&q=$(head -n 1 "$work/words")"
measure "GET /v1/items?q=" hit "$shop_pid" "$base/v1/items?limit=20&q=$(head -n 1 "$work/words")"
warm "$base/v1/items/facets?q=$(head -n 1 "$work/words")"
measure "GET /v1/items/facets?q=" hit "$shop_pid" "$base/v1/items/facets?q=$(head -n 1 "$work/words")"

log "orders: two random items of 1 000, then the same two items every time (the hot-item limit)"
measure "POST /v1/orders" - "$shop_pid" "$base" -s "$work/orders.lua"
measure "POST /v1/orders (the same two items)" - "$shop_pid" "$base" -s "$work/hot-orders.lua"
# "token order_id" of every order, by its customer's token.
psql_on bench_capacity "SELECT customer_id, id, status FROM orders" >"$work/orders"
awk -F'|' 'NR == FNR { split($0, c, " "); token[c[1]] = c[2]; next } { print token[$1], $2, $3 }' \
  "$work/customers" "$work/orders" >"$work/order-tokens"
awk '{ print $1, $2 }' "$work/order-tokens" >"$work/token-order"
bearer_lua order "$work/token-order" GET '"/v1/orders/" .. id' nil
measure "GET /v1/orders/{id}" - "$shop_pid" "$base" -s "$work/order.lua"
measure "GET /v1/orders" - "$shop_pid" "$base" -s "$work/my-orders.lua"
# Each pending order is paid once: each thread walks its own half of them.
{ lua_head; cat <<LUA; } >"$work/payment.lua"
function init(args) lines = read("$work/token-order") end
request = function()
  local token, id = lines[(n * 2 + thread_id) % #lines + 1]:match("(%S+) (%S+)")
  return wrk.format("POST", "/v1/orders/" .. id .. "/payment", { ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() }, '{"test_outcome":"delay"}')
end
LUA
measure "POST /v1/orders/{id}/payment" - "$shop_pid" "$base" -s "$work/payment.lua"

log "auth: login (argon2id at its default parameters), me, JWKS"
{ lua_head; cat <<'LUA'; } >"$work/login.lua"
wrk.method = "POST"
wrk.body = '{"email":"bench1@example.com","password":"correct horse battery staple"}'
wrk.headers["Content-Type"] = "application/json"
LUA
measure "POST /v1/auth/login" - "$auth_pid" "$auth/v1/auth/login" -s "$work/login.lua"
measure "GET /v1/auth/me" - "$auth_pid" "$auth" -s "$work/me.lua"
measure "GET /.well-known/jwks.json" - "$auth_pid" "$auth/.well-known/jwks.json"

# drain KIND_PATTERN NAME: start the worker, wait until every job of KIND_PATTERN has succeeded
# (at most 90 s), stop it; a TSV row: the worker's CPU per job, catalog-order's (applying the
# jobs' events), PostgreSQL's.
drain() {
  local pattern=$1 name=$2 total finished=0 shop_before worker_ticks shop_ticks pg_ticks t0 elapsed rate _
  total=$(psql_on bench_capacity "SELECT count(*) FROM jobs WHERE kind LIKE '$pattern'")
  shop_before=$(ticks "$shop_pid")
  pg_backends >"$work/pg.before"
  t0=$(date +%s.%N)
  start_worker
  for _ in $(seq 1 900); do
    finished=$(psql_on bench_capacity "SELECT count(*) FROM jobs WHERE kind LIKE '$pattern' AND status = 'succeeded'")
    [ "$finished" -ge "$total" ] && break
    sleep 0.1
  done
  worker_ticks=$(ticks "$worker_pid")
  shop_ticks=$(($(ticks "$shop_pid") - shop_before))
  pg_ticks=$(pg_since)
  elapsed=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
  stop "$worker_pid"
  worker_pid=''
  rate=$(awk -v d="$finished" -v s="$elapsed" 'BEGIN { printf "%.0f", d / s }')
  printf '%-44s %5s/%-5s jobs in %ss: µs a job: worker %s, catalog-order (events) %s, pg %s\n' "$name" \
    "$finished" "$total" "$elapsed" "$(per "$worker_ticks" "$finished")" \
    "$(per "$shop_ticks" "$finished")" "$(per "$pg_ticks" "$finished")"
  printf 'job\t%s\t-\t-\t%s\t-\t-\t%s\t%s\t%s\t%s\n' "$name" "$rate" "$(per "$worker_ticks" "$finished")" \
    "$(per "$pg_ticks" "$finished")" "$(per "$shop_ticks" "$finished")" "$((total - finished))" >>"$work/capacity.tsv"
}
log "the worker works off the order confirmations"
drain 'email.%' email.order_confirmation

log "uploads: a 1600×1200 JPEG ($(du -k "$work/photo.jpg" | cut -f1) KiB), then the worker's thumbnails"
# Each upload to one of the 1 000 items of the orders, at random: a few images an item, as a
# catalog has them (the image list is not paginated).
{ lua_head; cat <<LUA; } >"$work/upload.lua"
local boundary = "capacityboundary7f3a"
function init(args)
  items = read("$work/order-items")
  math.randomseed(os.time() * 100 + thread_id)
  local f = assert(io.open("$work/photo.jpg", "rb"))
  body = "--" .. boundary .. '\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
    .. "Content-Type: image/jpeg\r\n\r\n" .. f:read("*a") .. "\r\n--" .. boundary .. "--\r\n"
  f:close()
end
request = function()
  return wrk.format("POST", "/v1/items/" .. items[math.random(1, #items)] .. "/images", {
    ["Authorization"] = "Bearer $admin", ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
    ["Idempotency-Key"] = key() }, body)
end
LUA
random_path images "$work/order-items" /v1/items/ /images
measure "POST /v1/items/{id}/images" - "$shop_pid" "$base" -s "$work/upload.lua"
drain image.thumbnail image.thumbnail
# The bytes of a size, from the NATS object store (never in the response cache; a browser or CDN
# keeps them a year, so this is a first view).
psql_on bench_capacity "SELECT item_id || '/images/' || id || '/small' FROM item_images WHERE status = 'ready'" \
  >"$work/ready-images"
random_path image-bytes "$work/ready-images" /v1/items/ ""
measure "GET /v1/items/{id}/images/{image_id}/{size}" - "$shop_pid" "$base" -s "$work/image-bytes.lua"

log "catalog reads with the response cache off: every request goes to PostgreSQL"
stop "$shop_pid"
start_shop CACHE_MAX_ENTRIES=0
measure "GET /v1/categories" miss "$shop_pid" "$base/v1/categories"
measure "GET /v1/items" miss "$shop_pid" "$list" -s "$work/list.lua"
measure "GET /v1/items/{id}" miss "$shop_pid" "$base" -s "$work/item.lua"
measure "GET /v1/items?q=" miss "$shop_pid" "$base" -s "$work/search.lua"
measure "GET /v1/items/facets?q=" miss "$shop_pid" "$base" -s "$work/facets.lua"
measure "GET /v1/items/{id}/images" miss "$shop_pid" "$base" -s "$work/images.lua"

{
  printf 'meta\tdate\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
  printf 'meta\tcommit\t%s\n' "$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
  printf 'meta\tcpu\t%s\n' "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
  printf 'meta\tcores\t%s\n' "$(nproc)"
  printf 'meta\tseconds\t%s\n' "$seconds"
  printf 'meta\tconnections\t%s\n' "$connections"
  printf 'meta\titems\t%s\n' "$items"
  printf 'meta\tload_before\t%s\n' "$load_before"
  printf 'meta\tload_after\t%s\n' "$(cut -d' ' -f1 /proc/loadavg)"
  printf 'meta\trun_seconds\t%s\n' "$((SECONDS - began))"
} >>"$work/capacity.tsv"
mkdir -p "$(dirname "$tsv")"
cp "$work/capacity.tsv" "$tsv"
python3 bench/py/capacity.py "$tsv" docs/capacity.md
log "wrote $tsv and docs/capacity.md in $((SECONDS - began))s (load average before $load_before, after $(cut -d' ' -f1 /proc/loadavg))"
