#!/usr/bin/env bash
# On GitHub (ci.yml, job deploy-test): build the images, load them into the kind cluster the
# workflow created, install PostgreSQL and NATS from k8s/dev, install the chart with the
# development values, and run `helm test`. Needs docker, kind, kubectl and helm; it cannot run
# on a machine without a Docker engine.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

cluster=${KIND_CLUSTER:-storefront}
tag=ci
for svc in auth catalog-order worker; do
  docker build --target "$svc" -t "storefront/$svc:$tag" .
  kind load docker-image --name "$cluster" "storefront/$svc:$tag"
done
kubectl apply -k k8s/dev
kubectl -n storefront-dev rollout status statefulset/postgres --timeout=180s
kubectl -n storefront-dev rollout status statefulset/nats --timeout=180s
helm upgrade --install storefront helm/storefront -n storefront-dev \
  -f k8s/dev/values.yaml --set image.tag="$tag" --set image.pullPolicy=Never \
  --set networkPolicy.enabled=false --wait --timeout 5m
helm test storefront -n storefront-dev --logs
log "deployed to kind and helm test passed"
