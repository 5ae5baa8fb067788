#!/usr/bin/env bash
# Builds the kind node image offline (no registry, no GitHub): kind's node base from the
# Debian base image (node/base.Dockerfile), the node's Kubernetes binaries of the pinned
# version (e2e/cluster/build.sh kind), and every image the node runs, built here and tagged
# as kubeadm and kind name them, imported into the node's containerd as kind does.
#   e2e/kind/node-image.sh      # prints the node image's name; needs a running Docker engine
# Cached like the other images (e2e/images/lib.sh): rebuilt when an input changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../images/lib.sh
source "$here/../images/lib.sh"
# shellcheck source=../cluster/versions.env
source "$repo_root/e2e/cluster/versions.env"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

NODE_IMAGE=spo-kind/node:$K8S_VERSION
k8s_bin="$cache/k8s-$K8S_VERSION/bin"
node_bin="$cache/k8s-node-$K8S_VERSION/bin"
etcd_bin="$cache/etcd-$ETCD_VERSION/bin"
crictl_bin="$cache/crictl-$CRICTL_VERSION/bin/crictl"
kind_src="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION"
[ -d "$kind_src/images/base/files" ] || (cd "$cache" && go mod download "sigs.k8s.io/kind@$KIND_VERSION")
work=$(mktemp -d "${TMPDIR:-/tmp}/spo-kind-node.XXXXXX")
build_container=''
cleanup() {
  [ -z "$build_container" ] || docker rm -f -v "$build_container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ensure_packages
build_debian_base

# kind's node base.
mkdir -p "$work/base"
cp -r "$kind_src/images/base/files" "$work/base/files"
chmod -R u+w "$work/base"
base_hash=$(hash_of "$DEBIAN_HASH" "@$here/node/base.Dockerfile" "@$work/base/files")
build_dockerfile kind-base "$base_hash" spo-kind/base:latest "$work/base" \
  -f "$here/node/base.Dockerfile" --build-arg "BASE=$BASE_IMAGE"
iptables_hash=$(hash_of "$DEBIAN_HASH" "@$here/node/iptables.Dockerfile")
build_dockerfile kind-iptables "$iptables_hash" spo-kind/iptables:latest "$here/node" \
  -f "$here/node/iptables.Dockerfile" --build-arg "BASE=$BASE_IMAGE"

for f in "$k8s_bin/kube-apiserver" "$node_bin/kubelet" "$etcd_bin/etcd" "$crictl_bin"; do
  [ -x "$f" ] || { ilog "$f missing: run bash e2e/cluster/build.sh kind"; exit 1; }
done

# component IMAGE BASE ENTRYPOINT BINARY...: an image holding BINARYs in /usr/local/bin.
component() {
  local image=$1 base=$2 entry=$3
  shift 3
  local ctx="$work/c-${image//[\/:]/_}"
  mkdir -p "$ctx/bin"
  cp "$@" "$ctx/bin/"
  {
    echo "FROM $base"
    echo "COPY bin/ /usr/local/bin/"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    [ -z "$entry" ] || echo "ENTRYPOINT [\"$entry\"]"
  } >"$ctx/Dockerfile"
  local base_id=''
  [ "$base" = scratch ] || base_id=$(docker image inspect -f '{{.Id}}' "$base")
  build_dockerfile "component-${image//[\/:]/_}" "$(hash_of "$base_id" "@$ctx")" "$image" "$ctx"
}

# The images kubeadm names for this version (kubeadm prints them offline).
mapfile -t kubeadm_images < <("$node_bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
pause_image='' coredns_image='' etcd_image=''
for image in "${kubeadm_images[@]}"; do
  case "$image" in
    */pause:*) pause_image=$image ;;
    */coredns:*) coredns_image=$image ;;
    */etcd:*) etcd_image=$image ;;
  esac
done
# kind's containerd config names its own sandbox image; both names point at one pause.
kind_pause=$(sed -n 's/^ *sandbox_image *= *"\(.*\)"/\1/p' "$kind_src/images/base/files/etc/containerd/config.toml")

# pause: Kubernetes' own pause.c (from the k8s.io/kubernetes module), built static.
k8s_src="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION"
[ -d "$k8s_src/build/pause" ] || (cd "$cache" && go mod download "k8s.io/kubernetes@$K8S_VERSION")
pause_version=${pause_image##*:}
mkdir -p "$work/pause"
gcc -Os -static -Wall -Werror -DVERSION="v$pause_version" -o "$work/pause/pause" "$k8s_src/build/pause/linux/pause.c"
component "$pause_image" scratch /usr/local/bin/pause "$work/pause/pause"
docker tag "$pause_image" "$kind_pause"

# CoreDNS at the version kubeadm names (built by e2e/cluster/build.sh kind).
coredns_version=${coredns_image##*:}
coredns_bin="$cache/coredns-$coredns_version/bin/coredns"
[ -x "$coredns_bin" ] || { ilog "$coredns_bin missing: run bash e2e/cluster/build.sh kind"; exit 1; }
mkdir -p "$work/coredns"
cp "$coredns_bin" "$work/coredns/coredns"
# kubeadm's Deployment passes only args: the image's entrypoint is coredns.
component "$coredns_image" scratch /usr/local/bin/coredns "$work/coredns/coredns"

component "$etcd_image" scratch '' "$etcd_bin/etcd"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  component "registry.k8s.io/$c:$K8S_VERSION" scratch '' "$k8s_bin/$c"
done
component "registry.k8s.io/kube-proxy:$K8S_VERSION" spo-kind/iptables:latest '' "$node_bin/kube-proxy"

# The node image: kind's base, the binaries, the images imported into its containerd (as
# `kind build node-image` does, but from images here rather than pulled).
node_images=("${kubeadm_images[@]}" "$kind_pause")
ids=()
for image in "${node_images[@]}"; do ids+=("$(docker image inspect -f '{{.Id}}' "$image")"); done
node_hash=$(hash_of node-r1 "$base_hash" "${node_images[@]}" "${ids[@]}" "@$crictl_bin" "@$node_bin/kubelet" "@$node_bin/kubeadm" "@$k8s_bin/kubectl" "@$here/node/default-storage.yaml")
if ! cached kind-node "$node_hash" "$NODE_IMAGE"; then
  ilog "kind node: assembling $NODE_IMAGE"
  build_container=$(docker run -d --entrypoint sleep spo-kind/base:latest infinity)
  docker cp "$crictl_bin" "$build_container:/usr/local/bin/crictl"
  for b in "$node_bin/kubelet" "$node_bin/kubeadm" "$k8s_bin/kubectl"; do
    docker cp "$b" "$build_container:/usr/bin/$(basename "$b")"
  done
  docker exec "$build_container" sh -c 'chown root:root /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl && chmod 0755 /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl'
  docker exec -i "$build_container" sh -c "mkdir -p /kind/manifests && cat >/kind/version" <<<"$K8S_VERSION"
  docker cp "$here/node/default-storage.yaml" "$build_container:/kind/manifests/default-storage.yaml"
  docker exec "$build_container" sh -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker exec "$build_container" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
  for image in "${node_images[@]}"; do
    docker save "$image" | docker exec -i "$build_container" \
      ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
  done
  docker exec "$build_container" ctr --namespace=k8s.io images list -q | sort >"$work/imported"
  for image in "${node_images[@]}"; do
    grep -qx "${image}" "$work/imported" || grep -qx "docker.io/library/${image}" "$work/imported" ||
      { ilog "image $image missing from the node's containerd"; cat "$work/imported" >&2; exit 1; }
  done
  docker exec "$build_container" sh -c 'kill $(pidof containerd); rm -f /tmp/containerd.log'
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' "$build_container" "$NODE_IMAGE" >/dev/null
  remember kind-node "$node_hash" "$NODE_IMAGE"
fi
echo "$NODE_IMAGE"
