#!/usr/bin/env bash
# The pytest suites of the Python SDK (sdk/python/tests) and the DSPy worker
# (examples/dspy-worker/tests), in the cached environment of scripts/python-env.sh. Real processes
# on loopback, DSPy's DummyLM for the language model. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$(bash scripts/python-env.sh)
echo "=== python tests (pytest) ==="
exec "$venv/bin/python" -m pytest -p no:cacheprovider -q sdk/python/tests examples/dspy-worker/tests "$@"
