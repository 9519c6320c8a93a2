#!/usr/bin/env bash
# Smoke test of a running stack, as a customer and an admin would use it:
# register → login → list items → order → upload an image → its job succeeds → logout (and the
# refresh token is dead afterwards). Needs curl and python3; prints one line per step.
#
#   SMOKE_ADMIN_EMAIL=… SMOKE_ADMIN_PASSWORD=… bash scripts/smoke.sh AUTH_URL CATALOG_URL
#
# The catalog needs an active item in stock (`catalog-order seed-demo` gives plenty).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

auth=${1:?usage: smoke.sh AUTH_URL CATALOG_URL}
catalog=${2:?usage: smoke.sh AUTH_URL CATALOG_URL}
admin_email=${SMOKE_ADMIN_EMAIL:?SMOKE_ADMIN_EMAIL (an admin, e.g. from auth create-admin) is needed}
admin_password=${SMOKE_ADMIN_PASSWORD:?SMOKE_ADMIN_PASSWORD is needed}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# json FIELD: read a field of the JSON on stdin (a.b.0.c paths).
json() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v,list) else v[k]
print(v)' "$1"; }
# call EXPECTED_STATUS curl-args…: the body on stdout; any other status fails the smoke test.
call() {
  local expected=$1 status
  shift
  status=$(curl -sS -o "$scratch/body" -w '%{http_code}' --max-time 10 "$@")
  [ "$status" = "$expected" ] || die "$* → $status (expected $expected): $(head -c 300 "$scratch/body")"
  cat "$scratch/body"
}
step() { printf 'smoke: %s\n' "$*"; }

email="smoke-$(date +%s)-$RANDOM@example.com"
password="smoke test password $RANDOM$RANDOM"
credentials=$(printf '{"email":"%s","password":"%s"}' "$email" "$password")
call 201 -X POST "$auth/v1/auth/register" -H 'content-type: application/json' -d "$credentials" >/dev/null
step "registered $email"
pair=$(call 200 -X POST "$auth/v1/auth/login" -H 'content-type: application/json' -d "$credentials")
access=$(json access_token <<<"$pair")
refresh=$(json refresh_token <<<"$pair")
step "logged in"

items=$(call 200 "$catalog/v1/items?limit=20&in_stock=true")
item=$(json items.0.id <<<"$items" 2>/dev/null) || die "no item in stock: seed the catalog (catalog-order seed-demo)"
step "listed items"

order=$(call 201 -X POST "$catalog/v1/orders" -H "authorization: Bearer $access" \
  -H 'content-type: application/json' -d "{\"lines\":[{\"item_id\":\"$item\",\"quantity\":1}]}")
step "ordered: $(json id <<<"$order") ($(json total_cents <<<"$order") $(json currency <<<"$order"))"

admin_pair=$(call 200 -X POST "$auth/v1/auth/login" -H 'content-type: application/json' \
  -d "$(printf '{"email":"%s","password":"%s"}' "$admin_email" "$admin_password")")
admin=$(json access_token <<<"$admin_pair")
# A 4×3 PNG.
base64 -d >"$scratch/pixel.png" <<<'iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAIAAAA7ljmRAAAAKklEQVR4nA3HMQEAMAzDMAMriMDpaSgBUYCbPgEOLh5CnLjx8lOnbr36AOO3DflsbMvSAAAAAElFTkSuQmCC'
upload=$(call 202 -X POST "$catalog/v1/items/$item/images" -H "authorization: Bearer $admin" \
  -F "file=@$scratch/pixel.png")
job=$(json job_id <<<"$upload")
step "uploaded an image (job $job)"
status=queued
for _ in $(seq 1 60); do
  status=$(call 200 "$catalog/v1/jobs/$job" -H "authorization: Bearer $admin" | json status)
  [ "$status" = succeeded ] && break
  [ "$status" = dead ] && die "the image job died"
  sleep 0.5
done
[ "$status" = succeeded ] || die "the image job is still $status after 30 s"
step "image job succeeded"

call 204 -X POST "$auth/v1/auth/logout" -H 'content-type: application/json' \
  -d "{\"refresh_token\":\"$refresh\"}" >/dev/null
call 401 -X POST "$auth/v1/auth/refresh" -H 'content-type: application/json' \
  -d "{\"refresh_token\":\"$refresh\"}" >/dev/null
step "logged out; the refresh token is dead"
step "ok"
