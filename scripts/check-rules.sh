#!/usr/bin/env bash
# The alerting rules: `promtool check rules`, `promtool test rules` (alerts that fire and stay
# quiet), and every `runbook_url` pointing at a section that exists in docs/RUNBOOK.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v promtool >/dev/null || die "promtool is needed (Debian: apt install prometheus)"
rules=helm/storefront/rules
promtool check rules "$rules/storefront.rules.yaml"
(cd "$rules" && promtool test rules tests.yaml)

python3 - "$rules/storefront.rules.yaml" docs/RUNBOOK.md <<'PY'
import re
import sys

rules, runbook = open(sys.argv[1]).read(), open(sys.argv[2]).read()

def slug(heading):  # GitHub's anchor for a heading
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")

anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
alerts = re.findall(r"- alert: (\w+)", rules)
urls = re.findall(r"runbook_url: \S+RUNBOOK\.md#(\S+)", rules)
if len(urls) != len(alerts):
    sys.exit(f"{len(alerts)} alerts but {len(urls)} runbook_url annotations")
missing = sorted(set(urls) - anchors)
if missing:
    sys.exit(f"runbook_url anchors with no section in docs/RUNBOOK.md: {missing}")
print(f"{len(alerts)} alerts, each with a runbook section")
PY
