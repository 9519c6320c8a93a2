#!/usr/bin/env bash
# The release's arm64 binaries, built here the way the Dockerfile builds them for linux/arm64:
# cross-compiled on this machine (no emulation), static (crt-static), through `cargo auditable`,
# with the Dockerfile's own cross settings (read from it, so the two cannot drift). Then checked:
#   - each is a static aarch64 executable;
#   - each carries the list of crates it was built from (cargo auditable's `.dep-v0` section: what
#     an image SBOM of a `scratch` image is made of), naming the service and its dependencies;
#   - the end-to-end smoke test (tests/tests/smoke.rs: scripts/smoke.sh's register → order → pay
#     → refund → image thumbnail → password reset) passes against the three of them, each run
#     under qemu-user, with real PostgreSQL and NATS.
#
#   bash scripts/cross.sh [--release]
#
# CI builds the dev profile: the cross toolchain, the C it compiles (ring, mimalloc, libjpeg-turbo)
# and the linking are the same, and a warm run costs a minute instead of the release profile's
# fat-LTO relinks (14.5 min cold on 2 cores; catalog-order's alone ~6 min warm). `--release`
# builds exactly the image's binaries.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
use_pinned_rust

profile=dev
[ "${1:-}" = --release ] && profile=release
target=aarch64-unknown-linux-gnu

bash scripts/tools.sh aarch64 cargo-auditable
# The std for aarch64 (rustup's own component; a no-op once installed).
rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2

cross_env=(SQLX_OFFLINE=true)
for name in CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER CC_aarch64_unknown_linux_gnu \
  AR_aarch64_unknown_linux_gnu RUSTFLAGS; do
  value=$(dockerfile_env "$name")
  cross_env+=("$name=$value")
done

log "building auth, catalog-order and worker for $target ($profile profile, cargo auditable)"
# Only this build gets them: RUSTFLAGS' crt-static would break the host build of the tests.
env "${cross_env[@]}" PATH="$(dirname "$(bash scripts/tools.sh path cargo-auditable)"):$PATH" \
  cargo auditable build --profile "$profile" --locked --target "$target" \
  --bin auth --bin catalog-order --bin worker >&2
[ "$profile" = dev ] && dir=debug || dir=release
out="${CARGO_TARGET_DIR:-$ROOT/target}/$target/$dir"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for svc in auth catalog-order worker; do
  description=$(file -b "$out/$svc")
  case "$description" in
    *"ARM aarch64"*"statically linked"*) ;;
    *) die "$svc is not a static aarch64 executable: $description" ;;
  esac
  # The crate list cargo auditable embeds (zlib-compressed JSON).
  aarch64-linux-gnu-objcopy --dump-section ".dep-v0=$scratch/$svc.dep" "$out/$svc" "$scratch/copy"
  python3 - "$scratch/$svc.dep" "$svc" <<'EOF'
import json, sys, zlib
with open(sys.argv[1], "rb") as f:
    packages = json.loads(zlib.decompress(f.read()))["packages"]
names = {p["name"] for p in packages}
root = [p["name"] for p in packages if p.get("root")]
missing = {"tokio", "axum", "sqlx-core", "async-nats", "platform"} - names
if root != [sys.argv[2]] or missing or len(packages) < 100:
    sys.exit(f"{sys.argv[2]}: embedded crate list is wrong: root {root}, missing {sorted(missing)}, {len(packages)} crates")
print(f"{sys.argv[2]}: static aarch64, {len(packages)} crates embedded")
EOF
  # No binfmt_misc here: the tests start what STOREFRONT_BIN_DIR names, so that is qemu.
  printf '#!/usr/bin/env bash\nexec qemu-aarch64-static %q "$@"\n' "$out/$svc" >"$scratch/$svc"
  chmod +x "$scratch/$svc"
done

log "the end-to-end smoke test against the aarch64 binaries, under qemu-user"
STOREFRONT_BIN_DIR=$scratch bash scripts/test.sh --test smoke 2>&1 | tee "$scratch/test.log" >&2
# A filter that matched nothing would pass too: the smoke test must have run.
grep -qx 'tests: 1 passed, 0 failed, 0 skipped' "$scratch/test.log" || die "the smoke test did not run"
log "cross build ok: $out"
