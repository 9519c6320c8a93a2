#!/usr/bin/env bash
# Make sure PostgreSQL answers on PGHOST:PGPORT (default 127.0.0.1:5432), starting the local
# Debian cluster if it is installed but stopped, and create the given databases if missing.
#
#   scripts/postgres.sh [DB ...]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
user=${PGUSER:-postgres}

# CI runs as root on a fresh Debian machine: install what is missing there.
if ! port_open "$host" "$port" && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && ! command -v pg_ctlcluster >/dev/null; then
  log "installing PostgreSQL (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n 1)
  # A database we just installed for local tests: trust local TCP connections, like this
  # project's development machines.
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
fi

if ! port_open "$host" "$port"; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n 1)
    log "starting PostgreSQL $version (pg_ctlcluster)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || sudo pg_ctlcluster "$version" main start
  elif command -v brew >/dev/null; then
    log "starting PostgreSQL (brew services)"
    brew services start postgresql@15 || brew services start postgresql
  else
    die "PostgreSQL is not reachable on $host:$port and not installed.
  Debian/Ubuntu: sudo apt install postgresql && sudo pg_ctlcluster 15 main start
  macOS:         brew install postgresql@15 && brew services start postgresql@15
  Docker:        docker compose up -d postgres
Then allow local connections for user '$user' (or set PGUSER/PGPASSWORD)."
  fi
  wait_port "$host" "$port" 30 || die "PostgreSQL did not come up on $host:$port"
fi

command -v psql >/dev/null || die "psql is missing (Debian/Ubuntu: apt install postgresql-client; macOS: brew install libpq)"
for db in "$@"; do
  exists=$(psql -h "$host" -p "$port" -U "$user" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
  if [ "$exists" != "1" ]; then
    log "creating database $db"
    psql -h "$host" -p "$port" -U "$user" -d postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
done
