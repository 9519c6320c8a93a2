#!/usr/bin/env bash
# The alerting rules: `promtool check rules`, `promtool test rules` (alerts that fire and stay
# quiet), and a `runbook_url` on every alert (scripts/check-docs.sh checks where they point).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v promtool >/dev/null || die "promtool is needed (Debian: apt install prometheus)"
rules=helm/storefront/rules
promtool check rules "$rules/storefront.rules.yaml"
(cd "$rules" && promtool test rules tests.yaml)

# Every alert links its runbook section; scripts/check-docs.sh checks each section exists.
alerts=$(grep -c -- '- alert: ' "$rules/storefront.rules.yaml")
urls=$(grep -c 'runbook_url: .*RUNBOOK\.md#' "$rules/storefront.rules.yaml")
[ "$alerts" = "$urls" ] || die "$alerts alerts but $urls runbook_url annotations"
log "$alerts alerts, each with a runbook_url"
