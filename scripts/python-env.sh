#!/usr/bin/env bash
# Creates, once, the Python environment of the SDK (sdk/python) and the DSPy worker
# (examples/dspy-worker), and prints its path on stdout (logs go to stderr):
#   venv=$(bash scripts/python-env.sh) && "$venv/bin/python" -m spo_dspy_worker
# The venv lives outside the repository, like the control plane's binaries:
#   ${SPO_CACHE_DIR:-~/.cache/session-pool-operator}/python-<hash of the lock files and Python>
# It holds exactly the pinned dependencies (installed with --no-deps, then `pip check`). The two
# local packages are installed into it non-editable and reinstalled whenever their sources change
# (a hash of them is kept in the venv), so every checkout sharing the cache runs its own sources.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[python-env] %s\n' "$*" >&2; }

# Debian's Python 3.11 (the Dockerfile's base is 3.11 too), not whatever shim is first on PATH.
python=${SPO_PYTHON:-/usr/bin/python3}
[ -x "$python" ] || python=$(command -v python3)

# Debian's python3 makes venvs only with the package python3-venv (ensurepip's wheels).
make_venv() {
  "$python" -m venv "$1" >&2 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "python3 -m venv failed; if python3-venv is missing: sudo apt-get install -y python3-venv"
    return 1
  fi
  say "installing Debian package python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  rm -rf "$1"
  "$python" -m venv "$1" >&2
}

locks=(examples/dspy-worker/requirements.lock sdk/python/requirements.lock sdk/python/requirements-test.lock)
key=$({ "$python" -c 'import sys; print(sys.version)'; cat "${locks[@]}"; } | sha256sum | cut -c1-16)
cache=${SPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/session-pool-operator}
venv="$cache/python-$key"
mkdir -p "$cache"

# One writer at a time: test runs in several checkouts may share the cache.
exec 9>"$venv.lock"
flock 9

if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  say "creating $venv (pinned dependencies; a few minutes the first time)"
  start=$(date +%s)
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    -r examples/dspy-worker/requirements.lock -r sdk/python/requirements-test.lock >&2
  "$venv/bin/pip" check --disable-pip-version-check >&2
  touch "$venv/.complete"
  say "dependencies installed in $(($(date +%s) - start)) s"
fi

sources=$(find sdk/python examples/dspy-worker \( -name pyproject.toml -o -path '*/src/*' \) -type f \
  ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.sources" 2>/dev/null)" != "$sources" ]; then
  say "installing sdk/python and examples/dspy-worker from this checkout"
  # Build in a scratch copy: setuptools leaves build/ and *.egg-info beside the sources otherwise.
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cp -r sdk/python "$scratch/sdk" && cp -r examples/dspy-worker "$scratch/worker"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall \
    "$scratch/sdk" "$scratch/worker" >&2
  echo "$sources" >"$venv/.sources"
fi
echo "$venv"
