#!/usr/bin/env bash
# Restore a dump over a database (docs/RUNBOOK.md, "Restoring a backup"): checksum, then
# `pg_restore --clean --if-exists` into TARGET_URL in one transaction. Stop the services that
# write to it first (scale their Deployments to 0).
#
#   bash scripts/restore.sh PATH/NAME-STAMP.dump postgres://…/catalog
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

dump=${1:?usage: restore.sh DUMP TARGET_URL}
target=${2:?usage: restore.sh DUMP TARGET_URL}
stem=${dump%.dump}
(cd "$(dirname "$dump")" && sha256sum --quiet -c "$(basename "$stem").sha256") || die "checksum mismatch: $dump"
pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error \
  -d "$target" "$dump"
log "restored $(basename "$dump") into ${target##*/}"
