// The sandbox: a local control plane with kwok nodes, a Redis Cluster, the CRDs, the operator
// and a sample SessionPool whose worker pods run as local processes, each with the DSPy example
// worker as its handler container (a Python process sharing the pod's ports). Runs in the foreground
// until Ctrl-C or SIGTERM, then tears everything down. Started by `npm run sandbox`.
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startEnvironment, type Environment } from './harness/environment.ts';
import { LocalKubelet } from './harness/local-kubelet.ts';
import { binaries, repoRoot, runRoot } from './harness/paths.ts';
import { run } from './harness/processes.ts';
import { redisEndpoints } from './harness/redis-cluster.ts';

export const SANDBOX_KUBECONFIG = path.join(repoRoot, '.sandbox/kubeconfig');
const say = (line: string) => console.log(`[sandbox ${new Date().toISOString().slice(11, 19)}] ${line}`);

function samplePool(endpoints: string[]): string {
  return `apiVersion: dspex.io/v1alpha1
kind: SessionPool
metadata:
  name: sample
  namespace: default
spec:
  replicas: 3
  sessionMode: Centralized
  worker:
    image: ghcr.io/dspex/session-pool-operator:0.1.0
  # The user's code: the DSPy example worker (examples/dspy-worker) as each pod's handler
  # container, answering with DSPy's DummyLM (no network).
  handler:
    image: spo-dspy-worker:dev
    env:
      - name: SPO_DSPY_LM
        value: dummy
    timeoutSeconds: 30
  store:
    endpoints: [${endpoints.map((e) => `"${e}"`).join(', ')}]
  sessions:
    ttlSeconds: 3600
    anonymousTtlSeconds: 300
`;
}

let environment: Environment | undefined;
let kubelet: LocalKubelet | undefined;
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping: workers, operator, control plane, Redis Cluster');
    await kubelet?.stop().catch(() => undefined);
    await environment?.stop();
    if (environment && code === 0) rmSync(environment.runDir, { recursive: true, force: true });
    say('stopped');
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  const runDir = path.join(runRoot(), `sandbox-${Date.now()}`);
  mkdirSync(runDir, { recursive: true });
  environment = await startEnvironment(runDir, { log: say });
  const vars = environment.variables();
  const kubeconfig = vars.KUBECONFIG ?? '';
  mkdirSync(path.dirname(SANDBOX_KUBECONFIG), { recursive: true });
  copyFileSync(kubeconfig, SANDBOX_KUBECONFIG);
  const env = { ...process.env, ...vars, KUBECONFIG: SANDBOX_KUBECONFIG };
  const kubectl = (args: string[]) => run(binaries().kubectl, args, { env });

  // The operator goes in as a platform engineer would install it: the Helm chart (CRDs
  // included). The local kubelet runs its pods, and the pool's worker pods, as processes.
  kubelet = new LocalKubelet({ kubeconfigPath: SANDBOX_KUBECONFIG, runDir, log: say, env: { SPO_HOST: '127.0.0.1' } });
  await kubelet.start();
  say('installing the operator: helm install spo charts/session-pool-operator -n spo-system');
  await run(
    binaries().helm,
    [
      '--kubeconfig',
      SANDBOX_KUBECONFIG,
      'install',
      'spo',
      path.join(repoRoot, 'charts/session-pool-operator'),
      '-n',
      'spo-system',
      '--create-namespace',
      '--wait',
      '--timeout',
      '180s',
    ],
    { env, timeoutMs: 200_000 },
  );

  const poolFile = path.join(runDir, 'sample-pool.yaml');
  writeFileSync(poolFile, samplePool(redisEndpoints(environment.redis)));
  say('applying the sample SessionPool "sample" (3 workers)');
  await kubectl(['apply', '-f', poolFile]);
  say('waiting for the pool to be Ready');
  await kubectl(['wait', '--for=condition=Ready', 'sessionpool/sample', '--timeout=120s']);
  say(await kubectl(['get', 'sessionpools', '-o', 'wide']));
  const workers = [...kubelet.workers.values()].filter((w) => w.namespace === 'default').map((w) => w.endpoint);

  console.log(`
The sandbox is up.
  export KUBECONFIG=${SANDBOX_KUBECONFIG}
  export PATH=${binaries().pathDirs.join(':')}:$PATH   # the pinned kubectl and helm
  kubectl get nodes
  kubectl get sessionpools,sessionmigrations
  kubectl describe sessionpool sample
  kubectl get deploy,pods,svc,pdb -l app.kubernetes.io/managed-by=session-pool-operator
  kubectl get pods -n spo-system          # the operator (two replicas, one leader)
  kubectl scale sessionpool sample --replicas 4
  kubectl apply -f examples/              # more pools and migrations (set their store endpoints first)
Workers (local processes for the worker pods, each with its DSPy handler): ${workers.join(' ')}
  export ${workers.map((w, i) => `W${i + 1}=${w}`).join(' ')}
  S=$(curl -s -XPOST $W1/v1/sessions -H 'content-type: application/json' -d '{"data":{}}' | grep -o '"id":"[^"]*"' | cut -d'"' -f4)
  curl -s -XPOST $W1/v1/sessions/$S/execute -H 'content-type: application/json' \\
    -d '{"handler":"define_program","args":{"name":"qa","signature":"question -> answer","instructions":"Answer in one word."}}'
  curl -s -XPOST $W2/v1/sessions/$S/execute -H 'content-type: application/json' \\
    -d '{"handler":"execute_program","args":{"name":"qa","inputs":{"question":"What is the capital of France?"}}}'
  (README.md walks through these)
Redis Cluster: ${redisEndpoints(environment.redis).join(',')}
Logs: ${path.join(runDir, 'logs')}
Press Ctrl-C to stop and tear everything down.`);
  await new Promise<never>(() => undefined);
} catch (error) {
  console.error(error instanceof Error ? error.stack : error);
  await shutdown(1);
}
