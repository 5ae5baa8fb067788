#!/usr/bin/env bash
# The end-to-end suite on kind: real containers from images built here, on a real cluster.
# Builds everything offline (e2e/cluster/build.sh kind; e2e/images/build.sh; e2e/kind/
# node-image.sh), starts dockerd unless one answers, creates a kind cluster (one control
# plane, two workers), loads the images, installs a Redis Cluster and the chart exactly as
# the README's quick start says, then checks on real pods: the pool comes Ready, a session
# keeps every increment through the Service, the worker containers run hardened, an Evacuate
# migration succeeds, a node drain completes, and the session is intact afterwards.
# Stops what it started, by pid and cluster name (dockerd too, if it started it).
#   e2e/kind/run.sh                  create, test, delete
#   KEEP_CLUSTER=1 e2e/kind/run.sh   leave the cluster (and dockerd) up afterwards
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=../cluster/versions.env
source e2e/cluster/versions.env
cache=${SPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/session-pool-operator}
cluster=${KIND_CLUSTER:-spo-e2e}
# The README's quick start installs the chart's default image (repository
# session-pool-operator, tag = appVersion) and examples/sessionpool-minimal.yaml names
# ghcr.io/dspex/session-pool-operator:<appVersion>: the image built here gets both names.
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/session-pool-operator/Chart.yaml)
image=session-pool-operator:e2e
example_image=$(sed -n 's/^ *image: *\(.*\)$/\1/p' examples/sessionpool-minimal.yaml)
handler_image=spo-dspy-worker:e2e
started=$(date +%s)
say() { printf '[kind-e2e %(%H:%M:%S)T +%ss] %s\n' -1 "$(($(date +%s) - started))" "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

bash e2e/cluster/build.sh kind
export PATH="$cache/kind-$KIND_VERSION/bin:$cache/k8s-$K8S_VERSION/bin:$cache/helm-$HELM_VERSION/bin:$PATH"

kubeconfig=$(mktemp)
dockerd_started=''
cleanup() {
  local code=$?
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    if [ $code -ne 0 ] && kind get clusters 2>/dev/null | grep -qx "$cluster"; then
      kind export logs "$cache/kind-logs/$cluster-$(date +%s)" --name "$cluster" >/dev/null 2>&1 || true
      say "node logs kept in $cache/kind-logs/"
    fi
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    [ -z "$dockerd_started" ] || e2e/images/dockerd.sh stop
  fi
  rm -f "$kubeconfig"
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM
docker info >/dev/null 2>&1 || { e2e/images/dockerd.sh start && dockerd_started=1; }

say "building images (cached by content)"
bash e2e/images/build.sh
node_image=$(bash e2e/kind/node-image.sh)
docker tag "$image" "session-pool-operator:$app_version"
docker tag "$image" "$example_image"

say "creating kind cluster $cluster ($node_image)"
kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
kind create cluster --name "$cluster" --config e2e/kind/kind-config.yaml --image "$node_image" --kubeconfig "$kubeconfig" --retain
export KUBECONFIG=$kubeconfig
bash e2e/kind/cni.sh "$cluster"
kubectl wait --for=condition=Ready nodes --all --timeout=180s
kubectl -n kube-system rollout status deployment/coredns --timeout=180s

say "loading images"
load=("$image" "session-pool-operator:$app_version" "$example_image" redis:7.0)
docker image inspect "$handler_image" >/dev/null 2>&1 && load+=("$handler_image")
kind load docker-image "${load[@]}" --name "$cluster"

say "Redis Cluster"
kubectl apply -f e2e/kind/redis-cluster.yaml
kubectl -n redis rollout status statefulset/redis-cluster --timeout=180s
kubectl -n redis wait --for=condition=complete job/redis-cluster-create --timeout=180s

say "quick start, as the README writes it"
# Step 1 of the quick start is "the CRDs, or let the chart install them": the chart does
# (crds.enabled=true by default); applying crds/ first as well makes helm refuse to adopt them.
helm install spo charts/session-pool-operator -n spo-system --create-namespace --wait --timeout 180s
kubectl apply -f examples/sessionpool-minimal.yaml
kubectl wait --for=condition=Ready sessionpool/minimal --timeout=180s
kubectl get sessionpools

say "a session through the Service (its ClusterIP, from a node: kube-proxy's rules pick the pod)"
svc_ip=$(kubectl get svc minimal -o jsonpath='{.spec.clusterIP}')
svc_port=$(kubectl get svc minimal -o jsonpath='{.spec.ports[0].port}')
# call METHOD PATH [BODY]: prints the body of a 2xx answer; retries (bounded) only the answers
# the worker API defines as "nothing was done, try again" (409, 503) and refused connections.
call() {
  local method=$1 path=$2 body=${3:-} out code rc
  for _ in $(seq 1 30); do
    rc=0
    out=$(docker exec "$cluster-control-plane" curl -sS --max-time 20 -X "$method" -w '\n%{http_code}' \
      -H 'content-type: application/json' ${body:+--data "$body"} "http://$svc_ip:$svc_port$path" 2>&1) || rc=$?
    code=${out##*$'\n'}
    case "$rc/$code" in
      0/2??) printf '%s\n' "${out%$'\n'*}"; return 0 ;;
      0/409 | 0/503 | 7/*) sleep 1 ;;
      *) say "$method $path: curl exit $rc, answer: $out"; return 1 ;;
    esac
  done
  say "$method $path: still refused after 30 tries"
  return 1
}
id=$(call POST /v1/sessions '{"data":{"vars":{"n":0}}}' | jq -r .session.id)
if [ -z "$id" ] || [ "$id" = null ]; then fail "no session id"; fi
incr() { call POST "/v1/sessions/$id/execute" '{"handler":"incr","args":{"key":"n"}}' >/dev/null; }
session_n() { call GET "/v1/sessions/$id" | jq -r '.session.data.vars.n'; }
for _ in 1 2 3 4 5; do incr; done
[ "$(session_n)" = 5 ] || fail "session lost an increment: n=$(session_n)"

say "the worker containers run hardened (asserted inside each running container)"
mapfile -t pods < <(kubectl get pods -l dspex.io/pool=minimal -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ ${#pods[@]} -eq 3 ] || fail "expected 3 worker pods, found ${#pods[@]}"
for pod in "${pods[@]}"; do
  container=$(kubectl get pod "$pod" -o json | jq -r --arg img "$example_image" '.spec.containers[] | select(.image == $img) | .name')
  sc=$(kubectl get pod "$pod" -o json | jq -c --arg c "$container" '(.spec.securityContext // {}) * ((.spec.containers[] | select(.name == $c)).securityContext // {})')
  in_pod() { kubectl exec "$pod" -c "$container" -- "$@"; }
  uid=$(in_pod id -u)
  [ "$uid" != 0 ] || fail "$pod runs as root"
  status=$(in_pod cat /proc/self/status)
  if [ "$(jq -r '.readOnlyRootFilesystem // false' <<<"$sc")" = true ]; then
    in_pod cat /proc/self/mounts | awk '$2 == "/" {print $4}' | grep -q '^ro' || fail "$pod: / is not mounted read-only"
    if in_pod sh -c 'echo x >/app/probe-write' 2>/dev/null; then fail "$pod: wrote to the read-only root"; fi
  fi
  if jq -e '.capabilities.drop // [] | index("ALL")' <<<"$sc" >/dev/null; then
    grep -q '^CapEff:[[:space:]]*0000000000000000$' <<<"$status" || fail "$pod: capabilities not dropped: $(grep CapEff <<<"$status")"
  fi
  if [ "$(jq -r '.allowPrivilegeEscalation' <<<"$sc")" = false ]; then
    grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || fail "$pod: privilege escalation not prevented"
  fi
  say "$pod/$container: uid $uid, securityContext $sc enforced"
done

say "Evacuate one worker"
pod=${pods[0]}
kubectl apply -f - <<YAML
apiVersion: dspex.io/v1alpha1
kind: SessionMigration
metadata:
  name: kind-e2e-evacuate
spec:
  poolRef: { name: minimal }
  type: Evacuate
  evacuate: { pods: [$pod] }
YAML
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded sessionmigration/kind-e2e-evacuate --timeout=180s
[ "$(session_n)" = 5 ] || fail "session changed by the evacuation"
incr

say "drain a node with pool pods"
node=$(kubectl get pods -l dspex.io/pool=minimal -o jsonpath='{.items[0].spec.nodeName}')
kubectl cordon "$node"
kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout=300s
kubectl wait --for=condition=Ready sessionpool/minimal --timeout=180s
[ "$(kubectl get pods -l dspex.io/pool=minimal --field-selector "spec.nodeName=$node" -o name | wc -l)" = 0 ] ||
  fail "pool pods still on the drained node $node"
incr
[ "$(session_n)" = 7 ] || fail "session lost an increment across the drain: n=$(session_n)"
kubectl uncordon "$node"

if kubectl get crd sessionpools.dspex.io -o json | jq -e '.spec.versions[] | select(.served) | .schema.openAPIV3Schema.properties.spec.properties.handler' >/dev/null; then
  if docker image inspect "$handler_image" >/dev/null 2>&1; then
    say "a pool with a handler container beside the runtime"
    kubectl apply -f - <<YAML
apiVersion: dspex.io/v1alpha1
kind: SessionPool
metadata:
  name: with-handler
spec:
  replicas: 1
  worker:
    image: $example_image
  handler:
    image: $handler_image
    env: [{ name: SPO_DSPY_LM, value: dummy }]
  store:
    endpoints: [redis-cluster.redis.svc:6379]
YAML
    kubectl wait --for=condition=Ready sessionpool/with-handler --timeout=300s
    hp=$(kubectl get pods -l dspex.io/pool=with-handler -o jsonpath='{.items[0].metadata.name}')
    ready=$(kubectl get pod "$hp" -o json | jq '[.status.containerStatuses[] | select(.ready)] | length')
    [ "$ready" -ge 2 ] || fail "$hp: $ready ready containers, expected the runtime and the handler"
    kubectl delete sessionpool with-handler --wait=true --timeout=120s
  else
    fail "the CRD has spec.handler but examples/dspy-worker/Dockerfile built no image"
  fi
else
  say "the CRD has no spec.handler yet: handler container check skipped"
fi

say "clean up"
kubectl delete sessionpool minimal --wait=true --timeout=120s
helm uninstall spo -n spo-system --wait --timeout 120s
say "kind end-to-end checks passed"
