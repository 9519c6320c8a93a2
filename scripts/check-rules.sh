#!/usr/bin/env bash
# The alerting rules as the chart ships them: templates/prometheusrule.yaml rendered for release
# `shop` in namespace `shop` (every service on, ServiceMonitor on), then `promtool check rules`,
# `promtool test rules` (rules/tests.yaml: alerts that fire and stay quiet) on that rendering, and
# a `runbook_url` on every alert (scripts/check-docs.sh checks where they point). The rendering
# must hold every alert of rules/storefront.rules.yaml, with no placeholder left.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash scripts/tools.sh promtool
bash scripts/tools.sh helm
helm=$(bash scripts/tools.sh path helm)
rules=helm/storefront/rules
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$helm" template shop helm/storefront --namespace shop --api-versions monitoring.coreos.com/v1 \
  -f helm/storefront/ci/default.yaml --set prometheusRule.enabled=true \
  --set serviceMonitor.enabled=true --show-only templates/prometheusrule.yaml 2>/dev/null \
  | sed -n '/^spec:$/,$p' | sed '1d; s/^  //' >"$out/storefront.rendered.yaml"
cp "$rules/tests.yaml" "$out/tests.yaml"

if grep -n '__[A-Z_]*__' "$out/storefront.rendered.yaml"; then
  die "placeholders left in the rendered rules"
fi
promtool check rules "$out/storefront.rendered.yaml"
(cd "$out" && promtool test rules tests.yaml)

# Every alert of the rules file is rendered, and links its runbook section; scripts/check-docs.sh
# checks each section exists.
static=$(grep -c -- '- alert: ' "$rules/storefront.rules.yaml")
alerts=$(grep -c -- '- alert: ' "$out/storefront.rendered.yaml")
urls=$(grep -c 'runbook_url: .*RUNBOOK\.md#' "$out/storefront.rendered.yaml")
[ "$alerts" = "$static" ] || die "the chart renders $alerts alerts, rules/storefront.rules.yaml has $static"
[ "$alerts" = "$urls" ] || die "$alerts alerts but $urls runbook_url annotations"
log "$alerts alerts as the chart renders them, each with a runbook_url"
