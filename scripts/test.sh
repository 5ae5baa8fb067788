#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (first build included),
# runs the static checks (the operator's build included), then the unit, integration and end-to-end tiers against a real
# Redis Cluster and a real control plane that it starts and stops itself, then the kind tier
# (e2e/kind/run.sh: the images built here, a three-node kind cluster, the README's quick
# start; it starts dockerd when none answers and stops it again). SPO_KIND=0 skips the kind tier.
# Extra arguments go to scripts/run-tests.ts (e.g. `npm test -- unit`); `npm test -- kind`
# runs the kind tier alone.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
export PATH="$root/node_modules/.bin:$PATH"

# The kind tier, bounded: past the limit, timeout sends SIGTERM to run.sh and its children;
# run.sh then deletes its cluster and stops the dockerd it started.
kind_tier() {
  local start code=0
  start=$(date +%s)
  echo "=== kind tier (e2e/kind/run.sh) ==="
  timeout "${SPO_KIND_TIMEOUT:-45m}" bash e2e/kind/run.sh || code=$?
  kind_summary="kind tier: $([ $code -eq 0 ] && echo passed || echo "FAILED (exit $code)") in $(($(date +%s) - start)) s"
  return $code
}

if [ "${1:-}" = kind ]; then
  kind_tier || { echo "$kind_summary"; exit 1; }
  echo "$kind_summary"
  exit 0
fi

if [ $# -eq 0 ]; then
  echo "=== static checks: typecheck, build, lint, format, shellcheck ==="
  tsc -p tsconfig.json
  # The operator as the image and the chart run it: built ahead of time into dist/ (npm run build).
  tsc -p tsconfig.build.json
  eslint --max-warnings 0 .
  prettier --check . >/dev/null || { prettier --check . ; exit 1; }
  git ls-files '*.sh' .ci/run | xargs shellcheck -x
  # The Python SDK and the DSPy worker (creates their cached venv the first time).
  bash scripts/test-python.sh
fi
# The failed tests of every tier, printed again at the very end (after the kind tier's long output).
SPO_FAILURE_REPORT=$(mktemp)
export SPO_FAILURE_REPORT
trap 'rm -f "$SPO_FAILURE_REPORT"' EXIT
print_failures() {
  [ -s "$SPO_FAILURE_REPORT" ] || return 0
  echo
  echo "=== failed tests (repeated from above) ==="
  cat "$SPO_FAILURE_REPORT"
}
tiers=0
node scripts/run-tests.ts "$@" || tiers=$?
[ $# -eq 0 ] || { print_failures; exit $tiers; }
# SPO_KIND=0: no kind tier (e.g. a machine without Docker).
[ "${SPO_KIND:-1}" != 0 ] || { print_failures; exit $tiers; }
# The kind tier runs even when a tier above failed: one run reports every failure.
kind=0
kind_tier || kind=$?
echo "$kind_summary"
print_failures
[ $tiers -eq 0 ] && [ $kind -eq 0 ]
