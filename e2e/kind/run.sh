#!/usr/bin/env bash
# The end-to-end suite on kind, for machines with a Docker engine (none here: see README).
# Creates a kind cluster, builds and loads the image, installs a Redis Cluster and the chart,
# then runs the same end-to-end suite with SPO_E2E_TARGET=kind (workers run as real pods).
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

redis_nodes=$(for i in 0 1 2 3 4 5; do printf 'redis-cluster-%s.redis-cluster.redis.svc.cluster.local:6379,' "$i"; done)
SPO_E2E_TARGET=kind SPO_E2E_WORKER_IMAGE="$image" SPO_E2E_REDIS_NODES="${redis_nodes%,}" \
  node_modules/.bin/node scripts/run-tests.ts e2e
