#!/usr/bin/env bash
# Prove the newest backup of each database restores: checksum, restore into a scratch database,
# compare the schema version and every table's row count with the dump's manifest, drop the
# scratch database. Prints one line per database that a log-based alert can match:
#   restore-verify db=catalog dump=catalog-20261126T120000Z result=ok schema=20261126000004 tables=9 rows=1234 seconds=2
# and exits non-zero if any check fails.
#
#   BACKUP_ADMIN_URL=postgres://…/postgres bash scripts/restore-verify.sh [NAME...]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dir=${BACKUP_DIR:-$DATA/backups}
admin=${BACKUP_ADMIN_URL:-postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/postgres}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for folder in "$dir"/*/; do names+=("$(basename "$folder")"); done
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
  psql "$admin" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $scratch" >/dev/null
  url="${admin%/*}/$scratch"
  # shellcheck disable=SC2064 # the names are fixed now
  trap "psql '$admin' -qAtX -c 'DROP DATABASE IF EXISTS $scratch' >/dev/null 2>&1" RETURN
  pg_restore --no-owner --no-privileges --exit-on-error -d "$url" "$dump"
  local report
  report=$(python3 - "$stem.manifest.json" "$url" <<'PY'
import json, subprocess, sys
manifest = json.load(open(sys.argv[1]))
def sql(q):
    return subprocess.run(["psql", sys.argv[2], "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q],
                          check=True, capture_output=True, text=True).stdout.strip()
problems = []
version = int(sql("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success") or 0)
if version != manifest["schema_version"]:
    problems.append(f"schema {version} != {manifest['schema_version']}")
rows = 0
for table, expected in sorted(manifest["tables"].items()):
    got = int(sql(f'SELECT count(*) FROM public."{table}"'))
    rows += got
    if got != expected:
        problems.append(f"{table} {got} != {expected}")
print(f"schema={version} tables={len(manifest['tables'])} rows={rows}"
      + (" problems=" + ";".join(problems).replace(" ", "_") if problems else ""))
sys.exit(1 if problems else 0)
PY
) || result=failed
  echo "restore-verify db=$name dump=$(basename "$stem") result=$result $report seconds=$(( $(date +%s) - started ))"
  [ "$result" = ok ]
}

for name in "${names[@]}"; do
  verify "$name" || failed=1
done
exit "$failed"
