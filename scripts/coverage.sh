#!/usr/bin/env bash
# Line coverage of libs/ and services/ over the whole test suite (unit, integration and the
# end-to-end tests that start the binaries), with cargo-llvm-cov. Fails when the total is under
# COVERAGE_FLOOR (80 %) or a domain module (services/*/src/domain/) under DOMAIN_FLOOR (90 %).
# Prints a table per crate; writes an HTML report to $CARGO_TARGET_DIR/coverage/html (or
# target/coverage/html) and lcov to …/coverage/lcov.info. `COVERAGE_REPORT_ONLY=1` re-reads the
# last run's profiles (no test run) — to re-check the floors quickly.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
use_pinned_rust
cd "$ROOT"

floor=${COVERAGE_FLOOR:-80}
domain_floor=${DOMAIN_FLOOR:-90}

bash scripts/tools.sh cargo-llvm-cov llvm
cov="$(bash scripts/tools.sh path cargo-llvm-cov)"
llvm="$(bash scripts/tools.sh path llvm)"
export LLVM_COV="$llvm/llvm-cov" LLVM_PROFDATA="$llvm/llvm-profdata"
# cargo-llvm-cov is run as a cargo subcommand; make it findable as one.
PATH="$(dirname "$cov"):$PATH"
export PATH

out="${CARGO_TARGET_DIR:-$ROOT/target}/coverage"
mkdir -p "$out"
# Instrument everything built from here on (tests and the service binaries the end-to-end tests
# start), in a target folder of its own, and collect every process's profile.
eval "$(cargo llvm-cov show-env --export-prefix)"
if [ -z "${COVERAGE_REPORT_ONLY:-}" ]; then
  cargo llvm-cov clean --workspace
  bash scripts/test.sh "$@"
fi

ignore='(^|/)(tests|bench)/|/libs/testkit/|/\.cargo/registry/|/rustc/'
cargo llvm-cov report --ignore-filename-regex "$ignore" --html --output-dir "$out" >/dev/null
cargo llvm-cov report --ignore-filename-regex "$ignore" --lcov --output-path "$out/lcov.info"
cargo llvm-cov report --ignore-filename-regex "$ignore" --json --summary-only --output-path "$out/summary.json"

python3 - "$out/summary.json" "$ROOT" "$floor" "$domain_floor" <<'PY'
import json
import re
import sys

summary, root, floor, domain_floor = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
files = json.load(open(summary))["data"][0]["files"]
crates, domain = {}, [0, 0]
for f in files:
    path = f["filename"].removeprefix(root + "/")
    m = re.match(r"(libs|services)/([^/]+)/", path)
    if not m:
        continue
    lines = f["summary"]["lines"]
    c = crates.setdefault(f"{m.group(1)}/{m.group(2)}", [0, 0])
    c[0] += lines["covered"]
    c[1] += lines["count"]
    if re.match(r"services/[^/]+/src/domain/", path):
        domain[0] += lines["covered"]
        domain[1] += lines["count"]

pct = lambda c: 100.0 * c[0] / c[1] if c[1] else 100.0
print(f"{'crate':<26} {'lines':>7} {'covered':>8}")
for name in sorted(crates):
    print(f"{name:<26} {crates[name][1]:>7} {pct(crates[name]):>7.1f}%")
total = [sum(c[0] for c in crates.values()), sum(c[1] for c in crates.values())]
print(f"{'total (libs + services)':<26} {total[1]:>7} {pct(total):>7.1f}%")
print(f"{'domain modules':<26} {domain[1]:>7} {pct(domain):>7.1f}%")
failed = []
if pct(total) < floor:
    failed.append(f"total {pct(total):.1f}% < {floor}%")
if pct(domain) < domain_floor:
    failed.append(f"domain modules {pct(domain):.1f}% < {domain_floor}%")
if failed:
    sys.exit("coverage below the floor: " + "; ".join(failed))
PY
log "coverage report: $out/html/index.html"
