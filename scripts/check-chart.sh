#!/usr/bin/env bash
# The Helm chart, offline: `helm lint --strict` and `helm template` for every value set in
# helm/storefront/ci/, each rendering validated by kubernetes-validate --strict against the
# Kubernetes versions we support, then policy tests over the rendered objects
# (scripts/chart_policy.py); the same for the development cluster's values and manifests (k8s/dev).
# Every value set is rendered twice and must give the same bytes (what `helm template`, `--dry-run`
# and GitOps tools see: no random values, no `lookup` that changes the output); the templates use
# no random or clock functions and no unexplained `lookup`. Custom resources have no schema in
# kubernetes-validate: chart_policy.py checks the CloudNativePG Clusters against one of their own
# (helm/storefront/ci/schemas/). Then values the schema or the templates must refuse, and the chart
# README's values table, which must be what scripts/chart-readme.py writes from the schema and
# values.yaml (every value described). Fails on the first problem.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

KUBERNETES_VERSIONS=(1.30.0 1.33.0 1.37.0)
chart=helm/storefront
bash scripts/tools.sh helm kubernetes-validate
helm=$(bash scripts/tools.sh path helm)
validate=$(bash scripts/tools.sh path kubernetes-validate)
python="$(dirname "$validate")/python"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$python" scripts/chart_policy.py --templates "$chart/templates"
sets=0
for values in "$chart"/ci/*.yaml k8s/dev/values.yaml; do
  sets=$((sets + 1))
  name=$(basename "$(dirname "$values")")-$(basename "$values" .yaml)
  log "chart values $name"
  "$helm" lint --strict "$chart" -f "$values" >/dev/null
  for rendering in "$name" "$name-again"; do
    "$helm" template storefront "$chart" -f "$values" --namespace shop \
      --api-versions monitoring.coreos.com/v1 --api-versions keda.sh/v1alpha1 >"$out/$rendering.yaml"
  done
  for version in "${KUBERNETES_VERSIONS[@]}"; do
    # CRDs (ServiceMonitor, PrometheusRule, ScaledObject, Cluster, PodMonitor) have no schema
    # here: warnings only.
    "$validate" --strict --quiet --no-warn -k "$version" "$out/$name.yaml"
  done
  "$python" scripts/chart_policy.py "$out/$name.yaml" "$values" "$out/$name-again.yaml"
done
# The development cluster's own manifests, as kustomize builds them.
bash scripts/tools.sh kubectl
"$(bash scripts/tools.sh path kubectl)" kustomize k8s/dev >"$out/k8s-dev.yaml"
for version in "${KUBERNETES_VERSIONS[@]}"; do
  "$validate" --strict --quiet --no-warn -k "$version" "$out/k8s-dev.yaml"
done
# Values the schema must refuse, each on top of the required values (ci/default.yaml: so that what
# refuses it is the value under test, not a missing one).
required=(-f "$chart/ci/default.yaml")
"$helm" template storefront "$chart" "${required[@]}" >/dev/null || die "the chart refused its required values alone"
if "$helm" template storefront "$chart" "${required[@]}" --set image.tag=latest >/dev/null 2>&1; then
  die "the chart accepted image.tag=latest"
fi
if "$helm" template storefront "$chart" "${required[@]}" --set secrets.existingSecret= >/dev/null 2>&1; then
  die "the chart rendered without secrets.existingSecret"
fi
# Payments: the gateway needs its URL and key; the webhook secrets are always mounted. Account
# e-mails need a base for their links (or an ingress host to take it from).
for bad in payments.gatewayUrl= secrets.keys.paymentGatewayApiKey= secrets.keys.paymentWebhookSecrets= \
  payments.provider=stripe payments.gatewayUrl=payments.example.com accountLinkBaseUrl= \
  accountLinkBaseUrl=shop.example.com; do
  if "$helm" template storefront "$chart" "${required[@]}" --set "$bad" >/dev/null 2>&1; then
    die "the chart accepted $bad"
  fi
done
# The Sentry DSN is a credential: only secrets.keys.sentryDsn, never a value in the ConfigMap.
if "$helm" template storefront "$chart" "${required[@]}" \
  --set observability.sentryDsn=https://k@sentry.example.com/1 >/dev/null 2>&1; then
  die "the chart accepted observability.sentryDsn (the DSN comes from secrets.keys.sentryDsn)"
fi
# CURSOR_SECRET is the existing Secret's, like every secret: the chart no longer generates it.
if "$helm" template storefront "$chart" "${required[@]}" \
  --set secrets.generateCursorSecret=true >/dev/null 2>&1; then
  die "the chart accepted secrets.generateCursorSecret (removed: the cursor secret is a key of secrets.existingSecret)"
fi
if "$helm" template storefront "$chart" "${required[@]}" \
  --set secrets.keys.cursorSecret= >/dev/null 2>&1; then
  die "the chart rendered without secrets.keys.cursorSecret"
fi
# TRUSTED_PROXIES takes CIDRs and addresses, as the services parse them; not host names.
if "$helm" template storefront "$chart" "${required[@]}" \
  --set 'trustedProxies={ingress-nginx.local}' >/dev/null 2>&1; then
  die "the chart accepted a host name in trustedProxies"
fi
# Retention periods are durations the services read (one number and a unit), never zero.
for bad in retention.jobs=0d retention.sessions=30 retention.jobEvents=7days retention.loginCounters=null; do
  if "$helm" template storefront "$chart" "${required[@]}" --set "$bad" >/dev/null 2>&1; then
    die "the chart accepted $bad"
  fi
done
# Bitnami-style values: a digest is sha256 and 64 lower-case hex digits; a registry has no scheme;
# commonLabels never take the chart's own labels (selectors); the security contexts are the
# Kubernetes fields only (this chart has no `enabled`: null leaves a field out); names are DNS labels.
digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
for bad in "services.auth.image.digest=${digest:0:70}" "services.worker.image.digest=sha512:${digest#sha256:}" \
  "services.catalog-order.image.digest=${digest^^}" "services.auth.image.digest=${digest#sha256:}" \
  global.imageRegistry=https://registry.example.com 'commonLabels.app\.kubernetes\.io/name=x' \
  podSecurityContext.enabled=false containerSecurityContext.enabled=false \
  fullnameOverride=Shop "fullnameOverride=$(printf '%038d' 0)" services.worker.extraEnvVarsSecret=Bad_Name; do
  if "$helm" template storefront "$chart" "${required[@]}" --set "$bad" >/dev/null 2>&1; then
    die "the chart accepted $bad"
  fi
done
"$helm" template storefront "$chart" "${required[@]}" --set "services.auth.image.digest=$digest" >/dev/null \
  || die "the chart refused a sha256 digest"
# Read replicas and CloudNativePG: the lag bound is a duration of 100ms or more; one source for
# catalog-order's read URL, and replicas to read from; fewer synchronous standbys than instances;
# a pinned PostgreSQL no newer than the backup's pg_dump; a Cluster name CloudNativePG accepts.
for bad in database.readMaxLag=50ms database.readMaxLag=0s database.readMaxLag=1; do
  if "$helm" template storefront "$chart" "${required[@]}" --set "$bad" >/dev/null 2>&1; then
    die "the chart accepted $bad"
  fi
done
cnpg=(--set postgresql.cloudnativepg.enabled=true)
"$helm" template storefront "$chart" "${required[@]}" "${cnpg[@]}" >/dev/null \
  || die "the chart refused postgresql.cloudnativepg.enabled with its defaults"
for bad in "postgresql.cloudnativepg.catalogReadReplica=true,secrets.keys.catalogDatabaseReadUrl=read-url" \
  "postgresql.cloudnativepg.catalogReadReplica=true,postgresql.cloudnativepg.instances=1,postgresql.cloudnativepg.synchronousReplicas=0" \
  postgresql.cloudnativepg.synchronousReplicas=3 postgresql.cloudnativepg.imageName= \
  postgresql.cloudnativepg.imageName=ghcr.io/cloudnative-pg/postgresql:17.5 \
  postgresql.cloudnativepg.imageName=ghcr.io/cloudnative-pg/postgresql postgresql.cloudnativepg.storage.size=10GB \
  fullnameOverride=1shop; do
  if "$helm" template storefront "$chart" "${required[@]}" "${cnpg[@]}" --set "$bad" >/dev/null 2>&1; then
    die "the chart accepted $bad with postgresql.cloudnativepg.enabled"
  fi
done
if "$helm" template shop-with-a-rather-long-release-name "$chart" "${required[@]}" "${cnpg[@]}" >/dev/null 2>&1; then
  die "the chart named a CloudNativePG Cluster with more than 50 characters"
fi
"$helm" template storefront "$chart" "${required[@]}" "${cnpg[@]}" --set postgresql.cloudnativepg.imageName= \
  --set backup.enabled=false >/dev/null || die "the chart refused the operator's default PostgreSQL without backups"
# The chart README's values table (scripts/chart-readme.py writes it).
"$python" scripts/chart-readme.py --check
log "chart: lint, render, schema validation and policies pass for $sets value sets"
