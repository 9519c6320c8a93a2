#!/usr/bin/env bash
# Prove the newest backup of each database restores: checksum, restore into a scratch database,
# compare the schema version and every table's row count with the dump's manifest, drop the
# scratch database. Prints one line per database that a log-based alert can match:
#   restore-verify db=catalog dump=catalog-20261126T120000Z result=ok schema=20261126000004 tables=9 rows=1234 seconds=2
# and exits non-zero if any check fails.
#
#   BACKUP_ADMIN_URL=postgres://…/postgres bash scripts/restore-verify.sh [NAME...]
#
# Needs only bash, coreutils, findutils and the PostgreSQL client tools (the chart's verification
# CronJob runs it in the official postgres image). BACKUP_ADMIN_URL's role needs CREATEDB;
# BACKUP_ADMIN_URL_FILE names a file holding it instead.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dir=${BACKUP_DIR:-$DATA/backups}
if [ -n "${BACKUP_ADMIN_URL_FILE:-}" ]; then BACKUP_ADMIN_URL=$(<"$BACKUP_ADMIN_URL_FILE"); fi
admin=${BACKUP_ADMIN_URL:-postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/postgres}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for folder in "$dir"/*/; do
    [ "$(basename "$folder")" = lost+found ] || names+=("$(basename "$folder")")
  done
fi
failed=0

verify() {
  local name=$1 started dump stem scratch url result=ok
  started=$(date +%s)
  dump=$(find "$dir/$name" -maxdepth 1 -name "$name-*.dump" | sort | tail -1)
  [ -n "$dump" ] || { echo "restore-verify db=$name result=failed reason=no-dump"; return 1; }
  stem=${dump%.dump}
  (cd "$dir/$name" && sha256sum --quiet -c "$(basename "$stem").sha256") \
    || { echo "restore-verify db=$name dump=$(basename "$stem") result=failed reason=checksum"; return 1; }
  scratch="restore_verify_${name//[^a-z0-9_]/_}_$$"
  # Each step reports its own failure: errexit does not apply inside `verify … || failed=1`.
  psql "$admin" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $scratch" >/dev/null \
    || { echo "restore-verify db=$name dump=$(basename "$stem") result=failed reason=create-database"; return 1; }
  url="${admin%/*}/$scratch"
  # shellcheck disable=SC2064 # the names are fixed now
  trap "psql '$admin' -qAtX -c 'DROP DATABASE IF EXISTS $scratch' >/dev/null 2>&1" RETURN
  pg_restore --no-owner --no-privileges --exit-on-error -d "$url" "$dump" \
    || { echo "restore-verify db=$name dump=$(basename "$stem") result=failed reason=restore"; return 1; }
  # The comparison runs in the scratch database itself, which also parses the manifest's JSON.
  local report
  report=$(psql "$url" -qAtX -v ON_ERROR_STOP=1 -v manifest="$(cat "$stem.manifest.json")" <<'SQL'
WITH manifest AS (SELECT :'manifest'::json AS m),
version AS (SELECT coalesce(max(version), 0) AS v FROM _sqlx_migrations WHERE success),
counts AS (
  SELECT t.key AS name, t.value::bigint AS expected,
         (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM public.%I', t.key),
                                              false, true, '')))[1]::text::bigint AS got
  FROM manifest, json_each_text(m -> 'tables') t)
SELECT format('schema=%s tables=%s rows=%s', v, (SELECT count(*) FROM counts),
              (SELECT coalesce(sum(got), 0) FROM counts))
       || CASE WHEN problems IS NULL THEN '' ELSE ' problems=' || problems END
FROM version, manifest, LATERAL (
  SELECT string_agg(p, ';' ORDER BY p) AS problems FROM (
    SELECT format('schema_%s_!=_%s', v, m ->> 'schema_version') AS p
    WHERE v <> (m ->> 'schema_version')::bigint
    UNION ALL
    SELECT format('%s_%s_!=_%s', name, got, expected) FROM counts WHERE got <> expected) found) problems;
SQL
) || { report="reason=restore-check-failed"; result=failed; }
  [[ $report == *problems=* ]] && result=failed
  echo "restore-verify db=$name dump=$(basename "$stem") result=$result $report seconds=$(( $(date +%s) - started ))"
  [ "$result" = ok ]
}

for name in "${names[@]}"; do
  verify "$name" || failed=1
done
exit "$failed"
