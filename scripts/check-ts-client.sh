#!/usr/bin/env bash
# The API specs as clients consume them: TypeScript types generated from the committed
# openapi/*.json (openapi-typescript) and a small typed program (clients/typescript/src/shop.ts)
# compiled against them with tsc. A breaking change to a wire shape — a renamed or retyped field
# the program reads — fails here. The committed specs are kept equal to what the services serve
# by tests/tests/openapi.rs. Needs node and npm; packages come from the npm registry, pinned by
# clients/typescript/package-lock.json, cached outside the clone.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT/clients/typescript"

command -v npm >/dev/null || die "node and npm are needed (Debian: apt install nodejs npm)"
cache=${STOREFRONT_CI_TOOLS:-/var/cache/storefront-tools}/npm
mkdir -p "$cache" 2>/dev/null || cache="$ROOT/.tools/npm"
npm ci --cache "$cache" --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
npm run -s generate >/dev/null
npx --no-install tsc --noEmit -p .
log "typescript client: types generated from openapi/*.json, shop.ts compiles against them"
