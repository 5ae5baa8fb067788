#!/usr/bin/env bash
# Starts the sandbox in the foreground: installs what it needs (first build included), then
# runs e2e/sandbox.ts. Ctrl-C or SIGTERM tears everything down.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
exec "$root/node_modules/.bin/node" e2e/sandbox.ts "$@"
