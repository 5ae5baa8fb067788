#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy, once per version,
# into a cache outside the repository: ${SPO_CACHE_DIR:-~/.cache/session-pool-operator}.
#   <cache>/k8s-<ver>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   <cache>/etcd-<ver>/bin/etcd
#   <cache>/kwok-<ver>/bin/kwok and <cache>/kwok-<ver>/stages.yaml
#   <cache>/helm-<ver>/bin/helm
# and with `build.sh kind`, for the kind tier:
#   <cache>/kind-<ver>/bin/kind
#   <cache>/k8s-node-<ver>/bin/{kubelet,kubeadm,kube-proxy}
#   <cache>/crictl-<ver>/bin/crictl, <cache>/coredns-<ver>/bin/coredns
# A finished build leaves a .complete marker; a rerun skips it. Concurrent runs wait on a lock.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${SPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/session-pool-operator}
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
need_go() {
  command -v go >/dev/null || { echo "go is required to build the control plane (apt-get install golang or see README)" >&2; exit 1; }
}
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# build_k8s_cmds OUT CMD...: builds k8s.io/kubernetes/cmd/CMD... of $K8S_VERSION into OUT/bin
# through a wrapper module (k8s.io/kubernetes is not meant to be required: its staging
# modules are pinned at v0.0.0, so each is replaced by its published v0.<minor>.<patch>).
build_k8s_cmds() {
  local out=$1
  shift
  local src="$out/src"; rm -rf "$src"; mkdir -p "$src" "$out/bin"
  local gomod minor
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local goline godebug
  goline=$(grep -m1 '^go ' "$gomod")
  godebug=$(grep -m1 '^godebug' "$gomod" || true)
  {
    echo "module spo.local/k8sbin"
    echo "$goline"
    [ -n "$godebug" ] && echo "$godebug"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # Every staging module k8s.io/kubernetes pins at v0.0.0 maps to its published v0.<minor>.<patch>.
    grep -E '^\s+k8s\.io/[^ ]+ v0\.0\.0\s*$' "$gomod" | awk -v v="v0.${K8S_VERSION#v1.}" '{print "replace " $1 " => " $1 " " v}' | sort -u
  } >"$src/go.mod"
  local cmd pkgs=()
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
    printf ')\n'
  } >"$src/tools.go"
  (cd "$src" && go mod tidy)
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$src" && go build -tags tools -trimpath -ldflags "$ld" -o "$out/bin/" "${pkgs[@]}")
}

build_k8s() {
  local out="$cache/k8s-$K8S_VERSION"
  [ -f "$out/.complete" ] && return 0
  need_go
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $K8S_VERSION (about 6 min cold)"
  build_k8s_cmds "$out" kube-apiserver kube-controller-manager kube-scheduler kubectl
  "$out/bin/kube-apiserver" --version | grep -q "$K8S_VERSION"
  touch "$out/.complete"
}

# The node's binaries, for the kind tier only (`build.sh kind`).
build_k8s_node() {
  local out="$cache/k8s-node-$K8S_VERSION"
  [ -f "$out/.complete" ] && return 0
  need_go
  log "building kubelet, kubeadm, kube-proxy $K8S_VERSION (about 5 min cold)"
  build_k8s_cmds "$out" kubelet kubeadm kube-proxy
  "$out/bin/kubelet" --version | grep -q "$K8S_VERSION"
  touch "$out/.complete"
}

build_etcd() {
  local out="$cache/etcd-$ETCD_VERSION"
  [ -f "$out/.complete" ] && return 0
  need_go
  log "building etcd $ETCD_VERSION (about 30 s cold)"
  local src="$out/src"; rm -rf "$src"; mkdir -p "$src" "$out/bin"
  cat >"$src/go.mod" <<GOMOD
module spo.local/etcdbin
go 1.24
require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$src" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" .)
  touch "$out/.complete"
}

build_kwok() {
  local out="$cache/kwok-$KWOK_VERSION"
  [ -f "$out/.complete" ] && return 0
  need_go
  log "building kwok $KWOK_VERSION (about 80 s cold)"
  mkdir -p "$out/bin"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local stage
  stage="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  # Documents joined with '---': without it YAML merges them and stages vanish silently.
  local first=1
  : >"$out/stages.yaml"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/general/pod-create pod/general/pod-init-container-running pod/general/pod-init-container-completed \
    pod/general/pod-ready pod/general/pod-complete pod/general/pod-delete; do
    [ -f "$stage/$f.yaml" ] || { echo "kwok stage $f missing in $stage" >&2; exit 1; }
    [ $first -eq 1 ] || echo '---' >>"$out/stages.yaml"
    first=0
    cat "$stage/$f.yaml" >>"$out/stages.yaml"
  done
  touch "$out/.complete"
}

build_helm() {
  local out="$cache/helm-$HELM_VERSION"
  # r2: stamps the Kubernetes version, as Helm's Makefile does; a build without it makes an
  # offline `helm template` assume Kubernetes v1.20 and refuse charts with a kubeVersion.
  [ -f "$out/.complete-r2" ] && return 0
  need_go
  log "building helm $HELM_VERSION (about 2 min cold)"
  mkdir -p "$out/bin"
  local gomod client_go k8s_major k8s_minor ld
  gomod=$(cd "$cache" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
  k8s_major=$(( $(echo "$client_go" | cut -d. -f1 | tr -d v) + 1 ))
  k8s_minor=$(echo "$client_go" | cut -d. -f2)
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld="$ld -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  GOBIN="$out/bin" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$out/.complete-r2"
}

# One Go command installed into $cache/<name>-<version>/bin, once (same marker as above).
go_install_tool() {
  local name=$1 version=$2 package=$3 cold=$4
  local out="$cache/$name-$version"
  [ -f "$out/.complete" ] && return 0
  need_go
  log "building $name $version (about $cold cold)"
  mkdir -p "$out/bin"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "$package@$version"
  touch "$out/.complete"
}

build_kind() { go_install_tool kind "$KIND_VERSION" sigs.k8s.io/kind "1 min"; }
build_crictl() { go_install_tool crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl "1 min"; }

# CoreDNS at the version kubeadm of $K8S_VERSION names (read from kubeadm's constants).
build_coredns() {
  local constants version
  constants="$(cd "$cache" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/cmd/kubeadm/app/constants/constants.go"
  version=$(sed -n 's/^\s*CoreDNSVersion = "\(.*\)"/\1/p' "$constants")
  [ -n "$version" ] || { echo "CoreDNSVersion not found in $constants" >&2; exit 1; }
  go_install_tool coredns "$version" github.com/coredns/coredns "2 min"
}

start=$(date +%s)
build_etcd
build_kwok
build_k8s
build_helm
# `build.sh kind`: also what the kind tier needs (kind, and the node's Kubernetes binaries).
if [ "${1:-}" = "kind" ]; then
  build_kind
  build_crictl
  build_coredns
  build_k8s_node
fi
log "control plane binaries ready in $cache ($(( $(date +%s) - start )) s)"
