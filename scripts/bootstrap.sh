#!/usr/bin/env bash
# Installs what the tests and the sandbox need on a fresh machine, and nothing twice:
#   Debian packages (redis-server, redis-tools, openssl, shellcheck), the npm packages
#   (including Node.js 24 as the dev dependency `node`), and the local control plane's
#   binaries (e2e/cluster/build.sh, cached by version outside the repository), and for the
#   kind tier Debian's docker.io, debootstrap, jq and gcc (e2e/images/lib.sh; dockerd itself
#   is started by e2e/kind/run.sh when none answers, and stopped by pid).
# Sourced or run by scripts/test.sh and scripts/sandbox.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[bootstrap] %s\n' "$*" >&2; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v openssl >/dev/null || missing+=(openssl)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
node_major=$(node_modules/.bin/node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 24 ]; then
  say "node_modules/.bin/node is Node.js $node_major; the project needs 24 (npm ci installs it)"
  exit 1
fi

command -v go >/dev/null || { say "Go (>= 1.26) is needed to build the local control plane; see README 'When a build fails'"; exit 1; }
bash e2e/cluster/build.sh
# The kind tier's Debian packages (the engine, and what the images are built with).
bash -c 'source e2e/images/lib.sh && ensure_packages'
