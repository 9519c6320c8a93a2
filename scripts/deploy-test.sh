#!/usr/bin/env bash
# On GitHub (ci.yml, job deploy-test): build the images, load them into the kind cluster the
# workflow created, install PostgreSQL and NATS from k8s/dev (adding a random cursor-secret to its
# Secret), install the chart with the development values, run `helm test`, run the backup and
# restore-verification CronJobs once, and rehearse a rollback (upgrade, `helm rollback`, `helm
# test`). Needs docker, kind, kubectl, openssl and helm; it cannot run on a machine without a
# Docker engine.
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
# CURSOR_SECRET and PAYMENT_WEBHOOK_SECRETS come from the Secret like every other secret (the
# chart generates none): random values, added once and kept, so the upgrade and the rollback
# below keep the same keys.
secret=(-n storefront-dev secret storefront-dev)
for key in cursor-secret payment-webhook-secrets; do
  if [ -z "$(kubectl get "${secret[@]}" -o jsonpath="{.data.$key}")" ]; then
    kubectl patch "${secret[@]}" --type merge \
      -p "{\"stringData\":{\"$key\":\"$(openssl rand -hex 32)\"}}"
  fi
done
kubectl -n storefront-dev rollout status statefulset/postgres --timeout=180s
kubectl -n storefront-dev rollout status statefulset/nats --timeout=180s
helm upgrade --install storefront helm/storefront -n storefront-dev \
  -f k8s/dev/values.yaml --set image.tag="$tag" --set image.pullPolicy=Never \
  --set networkPolicy.enabled=false --wait --timeout 5m
helm test storefront -n storefront-dev --logs
# The backup CronJobs, run now: a dump of both databases, then its restore verification.
for job in backup restore-verify; do
  kubectl -n storefront-dev create job "$job-now" --from="cronjob/storefront-$job"
  kubectl -n storefront-dev wait --for=condition=complete "job/$job-now" --timeout=300s
  kubectl -n storefront-dev logs "job/$job-now"
done
kubectl -n storefront-dev logs job/restore-verify-now | grep -q 'db=catalog .*result=ok' \
  || die "the restore verification did not pass"
# A release rollback, rehearsed as the runbook tells it: upgrade (revision 2), roll back to 1.
helm upgrade storefront helm/storefront -n storefront-dev --reuse-values --set logLevel=debug --wait --timeout 5m
helm history storefront -n storefront-dev
helm rollback storefront 1 -n storefront-dev --wait --timeout 5m
helm test storefront -n storefront-dev --logs
log "deployed to kind and helm test passed"
