#!/usr/bin/env bash
# The docs a newcomer follows must not lead nowhere: every relative link in the top-level *.md and docs/
# names a file of the repository, and every #anchor a heading of that file (GitHub's slugs);
# every alert's runbook_url names a section of docs/RUNBOOK.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

python3 - ./*.md docs/*.md k8s/dev/README.md <<'PY'
import os
import re
import sys


def slug(heading):  # GitHub's anchor for a heading
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    text = open(path).read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # "# comments" in code blocks are not headings
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


problems, links = [], 0
for doc in sys.argv[1:]:
    text = re.sub(r"```.*?```", "", open(doc).read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        links += 1
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(resolved):
            problems.append(f"{doc}: {target}: no such file")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            problems.append(f"{doc}: {target}: no such heading in {resolved}")
rules = "helm/storefront/rules/storefront.rules.yaml"
for anchor in re.findall(r"runbook_url: \S+RUNBOOK\.md#(\S+)", open(rules).read()):
    links += 1
    if anchor not in anchors("docs/RUNBOOK.md"):
        problems.append(f"{rules}: runbook_url #{anchor}: no such section in docs/RUNBOOK.md")
if problems:
    sys.exit("broken links:\n  " + "\n  ".join(problems))
print(f"{links} relative links in {len(sys.argv) - 1} documents lead somewhere")
PY
