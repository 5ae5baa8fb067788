#!/usr/bin/env bash
# The end-to-end suite on kind, for machines with a Docker engine (none here: see README).
# Creates a kind cluster, builds and loads the image, installs a Redis Cluster and the chart,
# then runs a pool of real worker pods through the Service, an evacuation and a node drain.
#   e2e/kind/run.sh            create, test, delete
#   KEEP_CLUSTER=1 e2e/kind/run.sh   leave the cluster up afterwards
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
cluster=${KIND_CLUSTER:-spo-e2e}
image=${IMAGE:-session-pool-operator:e2e}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e/kind/run.sh needs $tool on PATH" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "no Docker engine: use 'npm test' (local control plane) instead" >&2; exit 1; }

cleanup() { [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$cluster"; }
trap cleanup EXIT

kind create cluster --name "$cluster" --config e2e/kind/kind-config.yaml --wait 120s
kubeconfig=$(mktemp)
kind get kubeconfig --name "$cluster" >"$kubeconfig"
export KUBECONFIG=$kubeconfig

docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"

kubectl apply -f e2e/kind/redis-cluster.yaml
kubectl -n redis rollout status statefulset/redis-cluster --timeout=180s
kubectl -n redis wait --for=condition=complete job/redis-cluster-create --timeout=180s

helm install session-pool-operator charts/session-pool-operator \
  --namespace session-pool-operator --create-namespace \
  --set image.repository="${image%%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --wait --timeout 180s

redis_nodes=$(for i in 0 1 2 3 4 5; do printf '"redis-cluster-%s.redis-cluster.redis.svc.cluster.local:6379",' "$i"; done)

# A pool on the in-cluster Redis Cluster, real worker pods, traffic through the Service.
# (The mocha end-to-end tier drives local worker processes and a loopback Redis Cluster, so
# on kind this script runs its own checks against real pods instead.)
kubectl apply -f - <<YAML
apiVersion: dspex.io/v1alpha1
kind: SessionPool
metadata:
  name: kind-e2e
  namespace: default
spec:
  replicas: 3
  worker:
    image: $image
    imagePullPolicy: Never
  store:
    endpoints: [${redis_nodes%,}]
YAML
kubectl wait --for=condition=Ready sessionpool/kind-e2e --timeout=180s
kubectl port-forward svc/kind-e2e 18080:8080 >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null; cleanup' EXIT
sleep 3
id=$(curl -fsS -XPOST localhost:18080/v1/sessions -H 'content-type: application/json' -d '{"data":{"vars":{"n":0}}}' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
for _ in 1 2 3 4 5; do
  curl -fsS -XPOST "localhost:18080/v1/sessions/$id/execute" -H 'content-type: application/json' -d '{"handler":"incr","args":{"key":"n"}}' >/dev/null
done
curl -fsS "localhost:18080/v1/sessions/$id" | grep -q '"n":5' || { echo "session lost an increment" >&2; exit 1; }

# Evacuate one worker with a SessionMigration, then drain a node.
pod=$(kubectl get pods -l dspex.io/pool=kind-e2e -o jsonpath='{.items[0].metadata.name}')
kubectl apply -f - <<YAML
apiVersion: dspex.io/v1alpha1
kind: SessionMigration
metadata:
  name: kind-e2e-evacuate
spec:
  poolRef: { name: kind-e2e }
  type: Evacuate
  evacuate: { pods: [$pod] }
YAML
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded sessionmigration/kind-e2e-evacuate --timeout=180s
node=$(kubectl get pods -l dspex.io/pool=kind-e2e -o jsonpath='{.items[0].spec.nodeName}')
kubectl cordon "$node"
kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout=300s
curl -fsS "localhost:18080/v1/sessions/$id" | grep -q '"n":5' || { echo "session lost after the drain" >&2; exit 1; }
kubectl delete sessionpool kind-e2e --wait=true
helm uninstall session-pool-operator -n session-pool-operator --wait
echo "kind end-to-end checks passed"
