#!/usr/bin/env bash
# The production rehearsal (`make rehearse`): the chart rendered with production values
# (ci/full.yaml and a Secret made here), its hooks, Deployments (each at its HPA minimum), helm
# test and backup CronJobs run the way the kubelet runs them, behind nginx configured from the
# Ingress, scraped by Prometheus configured from the ServiceMonitor and PrometheusRule, under
# traffic; then a rolling upgrade. Prints a table and fails on any broken check. docs/rehearsal.md
# says what is imitated and how.
#
#   bash scripts/rehearse.sh            (REHEARSE_BIN_DIR=folder uses binaries built elsewhere)
#   REHEARSE_CHAOS=1 bash scripts/rehearse.sh   (`make chaos`: also restart PostgreSQL and NATS)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# postgresql: the rehearsal runs a cluster of its own (initdb), with password authentication,
# restarted in the chaos phase without touching the machine's own PostgreSQL.
# openssl makes the keys and certificates; curl stands in for the helm test pod's image.
bash scripts/tools.sh helm python nginx prometheus promtool postgresql openssl curl

bin_dir=${REHEARSE_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
  log "building the release binaries (the images' static build)"
  bin_dir=$(release_binaries auth catalog-order worker)
fi

# The NATS cluster (three nats-servers, JetStream R3) is the rehearsal's own, like its PostgreSQL:
# node i listens on REHEARSE_NATS_PORT+i (routes +2000, monitoring +4000), its store in $work.
nats_port=${REHEARSE_NATS_PORT:-4338}
nats_server=$(bash scripts/nats.sh bin)
work=$(mktemp -d "${TMPDIR:-/tmp}/rehearsal.XXXXXX")
chmod 0755 "$work"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  # Whatever the rehearsal started (pods, nginx, Prometheus, the NATS nodes), even if it was
  # killed itself.
  if [ -f "$work/pids" ]; then
    while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done <"$work/pids"
  fi
  # Its PostgreSQL daemonizes: SIGQUIT is an immediate shutdown.
  if [ -f "$work/postgres/data/postmaster.pid" ]; then
    kill -QUIT "$(head -n 1 "$work/postgres/data/postmaster.pid")" 2>/dev/null || true
  fi
  [ -n "${REHEARSE_KEEP:-}" ] && { log "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT

"$(bash scripts/tools.sh path python)" scripts/rehearse/rehearse.py \
  --chart helm/storefront --values helm/storefront/ci/full.yaml \
  --helm "$(bash scripts/tools.sh path helm)" --nginx "$(bash scripts/tools.sh path nginx)" \
  --bin-dir "$bin_dir" \
  --nats-server "$nats_server" --nats-port "$nats_port" --repo "$ROOT" \
  --workdir "$work" ${REHEARSE_CHAOS:+--chaos}
