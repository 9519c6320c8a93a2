#!/usr/bin/env bash
# The container images without a Docker engine: each service built as a static binary
# (glibc, crt-static, as the Dockerfile does), assembled `FROM scratch` with buildah (vfs storage,
# chroot isolation), then run with podman as a non-root user on a read-only root filesystem with
# only /tmp writable, and probed on /health/live. CI runs it when buildah and podman are present.
#
#   bash scripts/image.sh [SERVICE...]    (default: auth catalog-order worker)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(auth catalog-order worker)

if ! command -v buildah >/dev/null || ! command -v podman >/dev/null; then
  log "installing buildah, podman and runc (Debian)"
  apt_install buildah podman runc
fi

# This sandbox: vfs storage, runc, explicit ulimits (see BUILD-NOTES).
conf=$(mktemp -d)
trap 'rm -rf "$conf"' EXIT
cat >"$conf/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$conf/containers.conf" STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

log "building static release binaries"
bin=$(release_binaries "${services[@]}")

# auth and the worker open NATS before serving: give them a JetStream server of their own.
nats_port=${IMAGE_NATS_PORT:-4336}
bash scripts/nats.sh start "$nats_port"
trap 'bash scripts/nats.sh stop "$nats_port"; rm -rf "$conf"' EXIT

port=18400
for svc in "${services[@]}"; do
  file "$bin/$svc" | grep -qE "statically linked|static-pie linked" || die "$svc is not statically linked"
  log "assembling storefront/$svc:local FROM scratch"
  ctr=$(buildah from scratch)
  buildah copy "$ctr" "$bin/$svc" "/$svc" >/dev/null
  buildah copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  buildah config --user 65532:65532 --entrypoint "[\"/$svc\"]" \
    --env APP_ENV=prod --env LOG_FORMAT=json --label "org.opencontainers.image.title=storefront-$svc" "$ctr"
  buildah commit --quiet "$ctr" "storefront/$svc:local" >/dev/null
  buildah rm "$ctr" >/dev/null

  port=$((port + 2))
  log "running storefront/$svc:local: non-root, read-only root filesystem, /tmp only"
  # dev profile: no secrets needed just to come up; PostgreSQL may be absent (liveness only).
  cid=$(podman run -d --rm --network host --read-only --tmpfs /tmp:rw,size=16m \
    --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
    -e APP_ENV=dev -e HTTP_ADDR="127.0.0.1:$port" -e METRICS_ADDR="127.0.0.1:$((port + 1))" \
    -e NATS_URL="nats://127.0.0.1:$nats_port" -e NATS_NAMESPACE="image_$svc" "storefront/$svc:local")
  ok=0
  for _ in $(seq 1 50); do
    if curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
  done
  user=$(podman exec "$cid" /"$svc" --version >/dev/null 2>&1; podman inspect -f '{{.Config.User}}' "$cid")
  podman stop -t 5 "$cid" >/dev/null || true
  [ "$ok" = 1 ] || die "$svc did not answer /health/live inside its container"
  [ "$user" = "65532:65532" ] || die "$svc runs as $user, not 65532:65532"
  log "$svc: /health/live 200 as $user, read-only root filesystem"
done
