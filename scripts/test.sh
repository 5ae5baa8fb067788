#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (first build included),
# runs the static checks, then the unit, integration and end-to-end tiers against a real
# Redis Cluster and a real control plane that it starts and stops itself.
# Extra arguments go to scripts/run-tests.ts (e.g. `npm test -- unit`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
export PATH="$root/node_modules/.bin:$PATH"

if [ $# -eq 0 ]; then
  echo "=== static checks: typecheck, lint, format, shellcheck ==="
  tsc -p tsconfig.json
  eslint --max-warnings 0 .
  prettier --check . >/dev/null || { prettier --check . ; exit 1; }
  git ls-files '*.sh' .ci/run | xargs shellcheck -x
  # The Python SDK and the DSPy worker (creates their cached venv the first time).
  bash scripts/test-python.sh
fi
exec node scripts/run-tests.ts "$@"
