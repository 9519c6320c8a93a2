#!/usr/bin/env bash
# Consistent, checksummed backups of Storefront's databases, with retention.
#
#   BACKUP_TARGETS="auth=postgres://…/auth catalog=postgres://…/catalog" bash scripts/backup.sh
#
# A target may name a file holding the URL instead (auth=/run/secrets/storefront/auth-database-url).
#
# For each NAME=URL: `pg_dump -Fc` inside one repeatable-read snapshot, which also records the
# schema version (`_sqlx_migrations`) and the row count of every table in a manifest — so a
# restore can be verified against what was dumped (scripts/restore-verify.sh). Files:
#   $BACKUP_DIR/NAME/NAME-YYYYMMDDTHHMMSSZ.dump (+ .sha256, .manifest.json)
# Retention: the newest dump of each of the last $KEEP_DAILY days and of each of the last
# $KEEP_WEEKLY ISO weeks; older ones are deleted. Any failure exits non-zero, leaving no partial file.
# Needs only bash, coreutils, findutils and the PostgreSQL client tools: the chart's backup CronJob
# runs this very file in the official postgres image (helm/storefront/files/ links to it).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dir=${BACKUP_DIR:-$DATA/backups}
keep_daily=${KEEP_DAILY:-7}
keep_weekly=${KEEP_WEEKLY:-4}
targets=${BACKUP_TARGETS:-"auth=postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/auth catalog=postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/catalog"}
command -v pg_dump >/dev/null || die "pg_dump is needed (Debian: postgresql-client)"

backup_one() {
  local name=$1 url=$2 stamp file
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$dir/$name"
  file="$dir/$name/$name-$stamp"
  # One session holds a repeatable-read snapshot; pg_dump and the counts both read it.
  coproc SNAP { psql "$url" -qAtX -v ON_ERROR_STOP=1 2>&1; }
  local in=${SNAP[1]} out=${SNAP[0]}
  printf 'BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT pg_export_snapshot();\n' >&"$in"
  local snapshot
  read -r -t 30 snapshot <&"$out" || die "$name: no snapshot from PostgreSQL"
  [[ $snapshot =~ ^[0-9A-F-]+$ ]] || die "$name: could not start a snapshot: $snapshot"
  pg_dump -Fc --no-owner --no-privileges --snapshot="$snapshot" -d "$url" -f "$file.dump.partial"
  printf '%s\n' \
    "SELECT json_build_object('database', '$name', 'taken_at', '$stamp'," \
    " 'schema_version', (SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success)," \
    " 'tables', (SELECT coalesce(json_object_agg(t.relname," \
    "   (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', t.schemaname, t.relname), false, true, '')))[1]::text::bigint), '{}')" \
    "   FROM pg_stat_user_tables t WHERE t.schemaname = 'public'));" >&"$in"
  local manifest
  read -r -t 60 manifest <&"$out" || die "$name: no manifest"
  printf 'COMMIT;\n\\q\n' >&"$in"
  wait "$SNAP_PID" 2>/dev/null || true
  [[ $manifest == \{* ]] || die "$name: manifest query failed: $manifest"
  printf '%s\n' "$manifest" >"$file.manifest.json"
  mv "$file.dump.partial" "$file.dump"
  (cd "$dir/$name" && sha256sum "$(basename "$file.dump")" "$(basename "$file.manifest.json")" >"$(basename "$file").sha256")
  log "backed up $name → $file.dump ($(du -h "$file.dump" | cut -f1))"
}

# Retention, newest first: the first dump seen of a day or an ISO week is that day's or week's newest.
prune() {
  local name=$1 file stamp day week keep
  local -A days=() weeks=()
  for file in $(cd "$dir/$name" && find . -maxdepth 1 -name "$name-*.dump" -printf '%f\n' | sort -r); do
    stamp=${file#"$name-"}
    stamp=${stamp%.dump}
    [[ $stamp =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || continue
    day=${stamp:0:8}
    week=$(date -u -d "${stamp:0:4}-${stamp:4:2}-${stamp:6:2}" +%G-%V)
    keep=0
    if [ -z "${days[$day]:-}" ] && [ ${#days[@]} -lt "$keep_daily" ]; then days[$day]=1 keep=1; fi
    if [ -z "${weeks[$week]:-}" ] && [ ${#weeks[@]} -lt "$keep_weekly" ]; then weeks[$week]=1 keep=1; fi
    if [ "$keep" = 0 ]; then
      rm -f "$dir/$name/$name-$stamp".{dump,manifest.json,sha256}
      log "pruned $name-$stamp"
    fi
  done
}

for target in $targets; do
  name=${target%%=*}
  url=${target#*=}
  # NAME=/path: the URL is in that file (a mounted Secret), as the services read NAME_FILE.
  if [[ $url == /* ]]; then url=$(<"$url"); fi
  # A dump cut short (failure, kill) never looks like a backup: it stays *.partial, is removed
  # when the run fails and at the start of the next one.
  rm -f "$dir/$name"/*.partial 2>/dev/null || true
  trap 'rm -f "$dir/$name"/*.partial' EXIT
  backup_one "$name" "$url"
  prune "$name"
done
