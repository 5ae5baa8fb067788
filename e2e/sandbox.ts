// The sandbox: a local control plane with kwok nodes, a Redis Cluster, the CRDs, the operator
// and a sample SessionPool whose worker pods run as local processes. Runs in the foreground
// until Ctrl-C or SIGTERM, then tears everything down. Started by `npm run sandbox`.
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startEnvironment, type Environment } from './harness/environment.ts';
import { LocalKubelet } from './harness/local-kubelet.ts';
import { binaries, repoRoot, runRoot } from './harness/paths.ts';
import { run, startProcess, type ProcessRecord } from './harness/processes.ts';
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
  store:
    endpoints: [${endpoints.map((e) => `"${e}"`).join(', ')}]
  sessions:
    ttlSeconds: 3600
    anonymousTtlSeconds: 300
`;
}

let environment: Environment | undefined;
let kubelet: LocalKubelet | undefined;
let operator: ProcessRecord | undefined;
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping: workers, operator, control plane, Redis Cluster');
    await kubelet?.stop().catch(() => undefined);
    await environment?.stop();
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

  const crdFiles = existsSync(path.join(repoRoot, 'crds'))
    ? readdirSync(path.join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml'))
    : [];
  if (crdFiles.length > 0) {
    say('installing the CRDs (kubectl apply -f crds/)');
    await kubectl(['apply', '--server-side', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  } else {
    say('no CRDs in crds/ yet: skipping (placeholder until the operator lands)');
  }

  const operatorEntry = path.join(repoRoot, 'operator/cmd/operator.ts');
  if (existsSync(operatorEntry)) {
    say('starting the operator (logs: ' + path.join(runDir, 'logs/operator.log') + ')');
    operator = startProcess({
      name: 'operator',
      bin: process.execPath,
      args: [operatorEntry],
      runDir,
      cwd: repoRoot,
      env: { ...env, SPO_METRICS_PORT: '0' },
    });
  } else {
    say('operator/cmd/operator.ts not present yet: running without an operator (placeholder)');
  }

  kubelet = new LocalKubelet({ kubeconfigPath: SANDBOX_KUBECONFIG, runDir, log: say });
  await kubelet.start();

  if (crdFiles.length > 0) {
    const poolFile = path.join(runDir, 'sample-pool.yaml');
    writeFileSync(poolFile, samplePool(redisEndpoints(environment.redis)));
    say('applying the sample SessionPool "sample"');
    await kubectl(['apply', '-f', poolFile]);
  }

  console.log(`
The sandbox is up${operator ? ` (operator pid ${operator.pid})` : ''}.
  export KUBECONFIG=${SANDBOX_KUBECONFIG}
  export PATH=${binaries().pathDirs.join(':')}:$PATH   # the pinned kubectl and helm
  kubectl get nodes
  kubectl get sessionpools,sessionmigrations
  kubectl describe sessionpool sample
  kubectl get deploy,pods,svc,pdb -l app.kubernetes.io/managed-by=session-pool-operator
  kubectl scale sessionpool sample --replicas 4
Redis Cluster: ${redisEndpoints(environment.redis).join(',')}
Logs: ${path.join(runDir, 'logs')}
Press Ctrl-C to stop and tear everything down.`);
  await new Promise<never>(() => undefined);
} catch (error) {
  console.error(error instanceof Error ? error.stack : error);
  await shutdown(1);
}
