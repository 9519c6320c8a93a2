#!/usr/bin/env bash
# Catalog search: GET /v1/items?q=WORDS&limit=20, on a generated catalog whose words follow a
# skewed (Zipf-like) distribution (tests/fixtures/skewed_catalog.sql, 1 000 000 items in 50
# categories by default), for six classes of query:
#   common    word 10 of the vocabulary (in ~13 % of the items)
#   middling  word 300 (~0.5 %)
#   rare      word 15 000 (a few dozen items)
#   absent    a word not in the vocabulary: nothing matches, the "similar" fallback answers
#             (one more statement for the corrections and maybe a second search)
#   two-word  word 10 and word 3 000 (~0.05 %), both required
#   prefix    the first 4 letters of word 300: the last word matches as a prefix
# each with the default sort (relevance) and with sort=price. For every pair:
#   - the items the words match (active ones, count(*) over the text index),
#   - p50 and p99 latency with ONE client through HTTP (wrk -t1 -c1),
#   - requests per second with 32 clients through HTTP (wrk -t2 -c32),
#   - pgbench replaying the very statement the service runs (bench/src/bin/search-sql.rs prints
#     it from store::items::page_query) with the same parameter, 32 clients, and the ratio of
#     the two (for `absent` the service runs more than that one statement).
# Release build, local PostgreSQL and NATS. Prints a markdown table (also written to
# $SEARCH_REPORT when set); never fails on the figures.
#
#   bench/search.sh [SECONDS]    (default 5, per measurement: 36 measurements)
#   SEARCH_ITEMS=100000 bench/search.sh 2    a smaller catalog, for a quick try
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-5}
items=${SEARCH_ITEMS:-1000000}
nats_port=${NATS_PORT:-4335}
report=${SEARCH_REPORT:-/dev/null}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "usage: bench/search.sh [SECONDS]"
[[ "$items" =~ ^[1-9][0-9]*$ ]] || die "SEARCH_ITEMS must be a positive number"
# wrk, not hey: the load generator shares the 2 cores, and wrk needs a fraction of hey's CPU.
command -v wrk >/dev/null || apt_install wrk
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
psql_on() { psql "${pg_args[@]}" -d "$1" -qtAc "$2"; }
bash scripts/postgres.sh
psql_on postgres "DROP DATABASE IF EXISTS bench_search" >/dev/null 2>&1
psql_on postgres "CREATE DATABASE bench_search" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p catalog-order
cargo build --release --locked -q -p bench --bin search-sql
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE=bench_search HTTP_ADDR=127.0.0.1:18283 METRICS_ADDR=127.0.0.1:19283
export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_search"
"$bin/catalog-order" migrate up >/dev/null

work=$(mktemp -d)
app_pid=
cleanup() {
  if [ -n "$app_pid" ]; then
    kill "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
  fi
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  psql_on postgres "DROP DATABASE IF EXISTS bench_search" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "generating $items items in 50 categories (skewed words; minutes for 1 000 000)"
started=$SECONDS
psql "${pg_args[@]}" -d bench_search -q -v ON_ERROR_STOP=1 \
  -f services/catalog-order/tests/fixtures/skewed_catalog.sql >/dev/null
psql_on bench_search "SELECT skewed_catalog($items, 50)" >/dev/null
# As a catalog that has been in use is: the text index's pending list merged, the visibility
# map set, statistics fresh.
psql_on bench_search "VACUUM ANALYZE items" >/dev/null
log "catalog ready in $((SECONDS - started))s"

# The service searches this many candidates (SEARCH_CANDIDATES, or its default); search-sql
# must build the statement with the same number.
candidates=()
[ -n "${SEARCH_CANDIDATES:-}" ] && candidates=("$SEARCH_CANDIDATES")

"$bin/catalog-order" >"$work/service.log" 2>&1 &
app_pid=$!
base="http://$HTTP_ADDR"
for _ in $(seq 1 600); do
  curl -fs -o /dev/null "$base/health/ready" && break
  kill -0 "$app_pid" 2>/dev/null || { cat "$work/service.log" >&2; die "catalog-order exited"; }
  sleep 0.1
done
curl -fs -o /dev/null "$base/health/ready" || die "catalog-order is not ready after 60s"

word() { psql_on bench_search "SELECT skewed_word($1)"; }
w10=$(word 10)
w300=$(word 300)
w3000=$(word 3000)
w15000=$(word 15000)
classes=(common middling rare absent two-word prefix)
declare -A words=(
  [common]="$w10" [middling]="$w300" [rare]="$w15000" [absent]=zzqxabsent
  [two-word]="$w10 $w3000" [prefix]="${w300:0:4}"
)
sorts=(relevance price)

# CPU time of the whole machine (user + nice + system + irq + softirq), in clock ticks: both sides
# share the 2 cores, so CPU per operation explains the ratio.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
per_op_us() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }'
}
# wrk prints a latency as "850.00us", "1.23ms", "1.02s" or "1.50m": in milliseconds.
wrk_ms() {
  awk -v p="$1" '$1 == p { v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    f = u == "us" ? 0.001 : u == "s" ? 1000 : u == "m" ? 60000 : u == "h" ? 3600000 : 1;
    printf "%.2f", v * f; found = 1 } END { if (!found) print "-" }' "$2"
}
wrk_rps() { awk '/^Requests\/sec/ { print $2; found = 1 } END { if (!found) print 0 }' "$1"; }
wrk_total() { awk '/requests in/ { print $1; found = 1 } END { if (!found) print 0 }' "$1"; }
wrk_bad() { awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"; }

table="$work/table.md"
cpu="$work/cpu.md"
notes="$work/notes"
: >"$notes"
{
  echo "| query | sort | matches | p50 ms (1 client) | p99 ms (1 client) | req/s (32) | pgbench tps (32) | ratio |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$table"
{
  echo "| query | sort | HTTP: machine µs/req | of which the service | pgbench: machine µs/tx |"
  echo "| --- | --- | ---: | ---: | ---: |"
} >"$cpu"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$app_pid/stat"; }

n=0
for class in "${classes[@]}"; do
  q=${words[$class]}
  for sort in "${sorts[@]}"; do
    n=$((n + 1))
    label="$class ($q), sort=$sort"
    log "[$n/12] $label"
    # The service's statement for this request, and the text search query it binds.
    "$bin/search-sql" "$q" "$sort" "${candidates[@]}" >"$work/search.out"
    tsquery=$(sed -n '1s/^q=//p' "$work/search.out")
    tail -n +2 "$work/search.out" >"$work/search-$n.sql"
    if [ "$sort" = relevance ]; then
      matches=$(psql_on bench_search "SELECT count(*) FROM items
        WHERE active AND search @@ to_tsquery('catalog_search', '$tsquery')")
    fi

    # relevance is the default with q: the request does not name it.
    url="$base/v1/items?q=${q// /%20}&limit=20"
    [ "$sort" = relevance ] || url="$url&sort=$sort"
    status=$(curl -s -o "$work/body.json" -w '%{http_code}' "$url" || true)
    [ "$status" = 200 ] || echo "$label: the first request answered $status: $(head -c 300 "$work/body.json")" >>"$notes"

    wrk -t 1 -c 1 -d "${seconds}s" --latency "$url" >"$work/wrk1.out" 2>&1 || true
    p50=$(wrk_ms 50% "$work/wrk1.out")
    p99=$(wrk_ms 99% "$work/wrk1.out")

    ticks_before=$(cpu_ticks)
    machine_before=$(machine_ticks)
    wrk -t 2 -c 32 -d "${seconds}s" --latency "$url" >"$work/wrk32.out" 2>&1 || true
    service_ticks=$(($(cpu_ticks) - ticks_before))
    http_machine=$(($(machine_ticks) - machine_before))
    rps=$(wrk_rps "$work/wrk32.out")
    http_total=$(wrk_total "$work/wrk32.out")
    bad=$(($(wrk_bad "$work/wrk1.out") + $(wrk_bad "$work/wrk32.out")))
    [ "$bad" = 0 ] || echo "$label: $bad non-2xx answers or socket errors under wrk" >>"$notes"

    machine_before=$(machine_ticks)
    (cd "$work" && pgbench "${pg_args[@]}" -n -M prepared -c 32 -j 2 -T "$seconds" \
      -f "search-$n.sql" -D "q=$tsquery" bench_search >"$work/pgbench.out" 2>&1) \
      || echo "$label: pgbench failed: $(tail -n 3 "$work/pgbench.out" | tr '\n' ' ')" >>"$notes"
    pg_machine=$(($(machine_ticks) - machine_before))
    tps=$(awk '/^tps = / { print $3; found = 1 } END { if (!found) print 0 }' "$work/pgbench.out" | tail -n 1)
    pg_total=$(awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1]; found = 1 } END { if (!found) print 0 }' "$work/pgbench.out")
    ratio=$(awk -v a="$rps" -v b="$tps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')

    printf '| %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n' \
      "$class" "$sort" "$matches" "$p50" "$p99" "$rps" "$tps" "$ratio" >>"$table"
    printf '| %s | %s | %s | %s | %s |\n' "$class" "$sort" "$(per_op_us "$http_machine" "$http_total")" \
      "$(per_op_us "$service_ticks" "$http_total")" "$(per_op_us "$pg_machine" "$pg_total")" >>"$cpu"
  done
done

{
  echo
  echo "Catalog search, $items items (skewed words), ${seconds}s per measurement; ratio = HTTP req/s ÷ pgbench tps."
  echo "Words: common $w10 · middling $w300 · rare $w15000 · absent zzqxabsent · two-word $w10 $w3000 · prefix ${w300:0:4}"
  echo
  cat "$table"
  echo
  echo "CPU per operation at 32 clients (the whole machine: PostgreSQL, the service and the load generator share 2 cores):"
  echo
  cat "$cpu"
  if [ -s "$notes" ]; then
    echo
    sed 's/^/- /' "$notes"
  fi
} | tee "$report"
