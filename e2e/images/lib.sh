# Shared helpers for building images offline (sourced by e2e/images/build.sh and
# e2e/kind/build-node.sh). No registry is reachable: every image, base images included, is
# built here. An image is cached in the Docker engine under a tag keyed by the hash of its
# inputs (spo-cache/<name>:<hash>); a changed input gives a new hash and a rebuild.
# shellcheck shell=bash disable=SC2034 # repo_root and cache are for the scripts that source this
images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$images_dir/../.." && pwd)
cache=${SPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/session-pool-operator}
export DOCKER_BUILDKIT=0 # BuildKit would pull the `# syntax=` frontend; the classic builder needs nothing

ilog() { printf '[images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# hash_of ARGS...: one short hash over strings and the contents of files/directories given as
# @path (directories recursively, in a stable order, names included).
hash_of() {
  local arg
  for arg in "$@"; do
    if [ "${arg#@}" != "$arg" ]; then
      local p=${arg#@}
      if [ -d "$p" ]; then
        (cd "$p" && find . -type f ! -name '*.test.ts' ! -path '*/testing/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
      else
        sha256sum <"$p"
      fi
    else
      printf '%s\n' "$arg"
    fi
  done | sha256sum | cut -c1-16
}

# ensure_packages: Debian's Docker engine, debootstrap, jq and a C compiler, installed when missing.
ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v jq >/dev/null || missing+=(jq)
  command -v gcc >/dev/null || missing+=(gcc)                                          # kind's pause image
  [ -f "/usr/lib/$(gcc -dumpmachine 2>/dev/null)/libc.a" ] || missing+=(libc6-dev) # (static)
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || { ilog "missing: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"; return 1; }
  ilog "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# cached NAME HASH TAG...: true (and TAGs pointed at it) when spo-cache/NAME:HASH exists.
cached() {
  local name=$1 hash=$2 tag
  shift 2
  have_image "spo-cache/$name:$hash" || return 1
  for tag in "$@"; do docker tag "spo-cache/$name:$hash" "$tag"; done
  ilog "$name: cached ($hash)"
}

# remember NAME HASH IMAGE: records IMAGE as the build of NAME for HASH.
remember() { docker tag "$3" "spo-cache/$1:$2"; }

# The Debian base, made with debootstrap and `docker import`; the machine's CA bundle is
# added so that HTTPS (npm, PyPI) from inside the stand-in images trusts this machine's proxy.
DEBIAN_SUITE=bookworm
debian_mirror() {
  local m
  m=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
host_ca=/etc/ssl/certs/ca-certificates.crt
BASE_IMAGE=spo-base/debian:$DEBIAN_SUITE
build_debian_base() {
  local mirror hash
  mirror=$(debian_mirror)
  hash=$(hash_of debian-r1 "$DEBIAN_SUITE" "$mirror" "@$host_ca")
  DEBIAN_HASH=$hash
  cached debian "$hash" "$BASE_IMAGE" && return 0
  command -v debootstrap >/dev/null || { ilog "debootstrap missing: apt-get install debootstrap"; return 1; }
  ilog "debian: debootstrap $DEBIAN_SUITE from $mirror (about 30 s)"
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/spo-debootstrap.XXXXXX")
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; rm -rf "$root" "$root.log"; return 1; }
  mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
  install -m 0644 "$host_ca" "$root/etc/ssl/certs/ca-certificates.crt"
  install -m 0644 "$host_ca" "$root/usr/local/share/ca-certificates/spo-host-ca.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root" "$root.log"
  remember debian "$hash" "$BASE_IMAGE"
}

# build_dockerfile NAME HASH TAG CONTEXT [docker build args...]: builds unless cached.
build_dockerfile() {
  local name=$1 hash=$2 tag=$3 context=$4
  shift 4
  cached "$name" "$hash" "$tag" && return 0
  ilog "$name: building $tag"
  local logf
  logf=$(mktemp "${TMPDIR:-/tmp}/spo-build-$name.XXXXXX")
  if ! docker build --label "spo.input-hash=$hash" -t "$tag" "$@" "$context" >"$logf" 2>&1; then
    tail -30 "$logf" >&2
    rm -f "$logf"
    return 1
  fi
  rm -f "$logf"
  remember "$name" "$hash" "$tag"
}
