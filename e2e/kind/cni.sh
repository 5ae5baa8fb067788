#!/usr/bin/env bash
# Pod networking for a kind cluster created with `disableDefaultCNI: true` (e2e/kind/
# kind-config.yaml): what kind's kindnetd does, written once. Each node gets a ptp CNI config
# for its pod range (from the Node's spec.podCIDR) and a route to every other node's range
# through that node's address on the Docker network.
#   e2e/kind/cni.sh CLUSTER_NAME     # KUBECONFIG must point at the cluster
set -euo pipefail
cluster=${1:?usage: cni.sh CLUSTER_NAME}
nodes=$(kind get nodes --name "$cluster")
declare -A cidr ip
for node in $nodes; do
  for _ in $(seq 1 60); do
    cidr[$node]=$(kubectl get node "$node" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
    [ -n "${cidr[$node]}" ] && break
    sleep 1
  done
  [ -n "${cidr[$node]}" ] || { echo "node $node has no podCIDR after 60 s" >&2; exit 1; }
  ip[$node]=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")
done
for node in $nodes; do
  docker exec -i "$node" sh -c 'cat >/etc/cni/net.d/10-spo-ptp.conflist' <<JSON
{
  "cniVersion": "0.4.0",
  "name": "spo-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "${cidr[$node]}" }]], "routes": [{ "dst": "0.0.0.0/0" }] },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  for other in $nodes; do
    [ "$other" = "$node" ] || docker exec "$node" ip route replace "${cidr[$other]}" via "${ip[$other]}"
  done
done
