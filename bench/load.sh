#!/usr/bin/env bash
# The shop's traffic mix — browse, search, order, upload (bench/load/locustfile.py says what each
# flow sends and how a run is set up) — driven by Locust, headless, through an ingress for
# DURATION with USERS users. Prints a table per endpoint (requests, failures, req/s, p50, p90,
# p99, max in ms) and saves it as load-mix.md beside load_summary.json (the figures), Locust's
# CSV statistics and its log. Exits non-zero when a request failed: a 5xx, no answer, or an
# answer the mix does not expect (409 to an order is expected). The rehearsal runs it
# (docs/rehearsal.md, "The load mix").
#
#   bash bench/load.sh URL [USERS] [DURATION]     (default 20 users, 20s)
#   LOAD_OUT=DIR       where the statistics go (default: a new temporary folder, kept)
#   LOAD_MIX LOAD_THINK LOAD_CUSTOMERS LOAD_ADMIN_EMAIL LOAD_ADMIN_PASSWORD LOAD_CA_FILE
#   LOAD_HOST_HEADER   the mix's settings: the locustfile's docstring
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

url=${1:?usage: bench/load.sh URL [USERS] [DURATION]}
users=${2:-20}
duration=${3:-20s}
out=${LOAD_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/load.XXXXXX")}
mkdir -p "$out"
bash scripts/tools.sh locust
locust=$(bash scripts/tools.sh path locust)

log "load mix: $users users for $duration through $url (statistics in $out)"
status=0
# All users start within the first second (spawn rate = users); Locust exits 1 when any request
# failed. Its own summary goes to the log: the table below is the one to read.
rm -f "$out/load_summary.json"
"$locust" -f bench/load/locustfile.py --headless -u "$users" -r "$users" -t "$duration" --host "$url" \
  --csv "$out/load" --only-summary --loglevel WARNING >"$out/locust.log" 2>&1 || status=$?
if [ ! -s "$out/load_summary.json" ]; then
  tail -n 20 "$out/locust.log" >&2
  die "Locust wrote no summary (exit $status; log: $out/locust.log)"
fi
"$(dirname "$locust")/python" bench/load/table.py "$out/load_summary.json" >"$out/load-mix.md"
cat "$out/load-mix.md"
if [ "$status" != 0 ]; then
  die "failed requests or errors in the run (Locust exited $status; log: $out/locust.log)"
fi
