#!/usr/bin/env bash
# Fails when a tracked file holds something that looks like a real secret: a private key, a
# cloud or GitHub token, a signed JWT, or a URL or assignment carrying a password. Test code and
# fixtures (paths with a `tests/` or `fixtures/` folder) may hold throwaway values; any other line
# that must stay says `secret-scan: allow` and why.
#
#   bash scripts/secret-scan.sh [DIR]      scan the git-tracked files of DIR (default: the repo)
#   bash scripts/secret-scan.sh --self-test  prove each rule fires, in a scratch repository
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# Spelled in pieces so this file (and other scanners) do not take it for a key.
dashes='-----'
private="PRIV""ATE KEY"
rules=(
  "private key|${dashes}BEGIN ([A-Z]+ )?${private}${dashes}"
  "AWS access key|AKIA[0-9A-Z]{16}"
  "GitHub token|gh[pousr]_[A-Za-z0-9]{36}"
  "Slack token|xox[abprs]-[A-Za-z0-9-]{10,}"
  "JWT|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
  "password in a URL|[a-z][a-z0-9+.-]*://[A-Za-z0-9._%-]+:[^@/[:space:]\"'\$\{\}<>]{3,}@"
  "hard-coded secret|(password|passwd|secret|api_key|apikey|token)[\"']?[[:space:]]*[:=][[:space:]]*[\"'][^\"'\$\{[:space:]]{12,}[\"']"
)

# Documentation placeholders, not secrets: `user:pass@`, `user:password@`, `…:changeme@`.
placeholders='://[A-Za-z0-9._%-]+:(pass|password|secret|changeme)@'

scan() {
  local dir=$1 found=0 rule name pattern hits
  cd "$dir"
  for rule in "${rules[@]}"; do
    name=${rule%%|*}
    pattern=${rule#*|}
    hits=$(git ls-files -z | grep -zvE '(^|/)(tests|fixtures)/' \
      | xargs -0 -r grep -nIiE -- "$pattern" 2>/dev/null | grep -v 'secret-scan: allow' \
      | grep -viE "$placeholders" || true)
    if [ -n "$hits" ]; then
      found=1
      printf 'secret-scan: %s\n%s\n' "$name" "$hits" >&2
    fi
  done
  return "$found"
}

self_test() {
  local scratch rule name sample
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  git -C "$scratch" init -q
  declare -A samples=(
    ["private key"]="${dashes}BEGIN ${private}${dashes}" # secret-scan: allow (self-test sample)
    ["AWS access key"]="key = AKIA$(printf 'Q%.0s' {1..16})" # secret-scan: allow (self-test sample)
    ["GitHub token"]="ghp_$(printf 'a%.0s' {1..36})" # secret-scan: allow (self-test sample)
    ["Slack token"]="xoxb-1234567890-abcdef" # secret-scan: allow (self-test sample)
    ["JWT"]="eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlX2hlcmU" # secret-scan: allow (self-test sample)
    ["password in a URL"]="url: postgres://shop:hunter2hunter2@db:5432/shop" # secret-scan: allow (self-test sample)
    ["hard-coded secret"]='let password = "correct-horse-battery";' # secret-scan: allow (self-test sample)
  )
  for rule in "${rules[@]}"; do
    name=${rule%%|*}
    sample=${samples[$name]}
    printf '%s\n' "$sample" >"$scratch/leak.txt"
    git -C "$scratch" add leak.txt
    if (scan "$scratch") 2>/dev/null; then
      die "self-test: the rule '$name' missed: $sample"
    fi
    git -C "$scratch" rm -q --cached leak.txt
  done
  # Clean text, test fixtures and allowed lines pass.
  mkdir -p "$scratch/tests"
  printf 'password = "correct-horse-battery"\n' >"$scratch/tests/fixture.rs" # secret-scan: allow (self-test sample)
  # shellcheck disable=SC2016 # a literal ${SECRET} reference, as a config file would hold it
  printf 'url = "postgres://postgres@127.0.0.1/db"\nsecret = "${SECRET}"\n' >"$scratch/ok.txt"
  printf 'token = "abcdefghijklmnop" # secret-scan: allow (documented example)\n' >>"$scratch/ok.txt"
  git -C "$scratch" add tests/fixture.rs ok.txt
  (scan "$scratch") || die "self-test: clean files were flagged"
  log "secret-scan self-test: every rule fires, clean files pass"
}

if [ "${1:-}" = --self-test ]; then
  self_test
else
  scan "${1:-$ROOT}"
  log "secret-scan: no secrets in tracked files"
fi
