// Benchmark of the operator: with 200 SessionPools, the time from a spec change to the
// Deployment updated (p50, p99), the operator's memory (RSS) and its CPU while idle (30 s).
// Starts its own environment (Redis Cluster + control plane, in a temp run dir, stopped at the
// end) and the operator as a child process (only the pool controller, one namespace).
// Usage: node bench/operator.bench.ts [--pools 200] [--idle-seconds 30] [--spacing-ms 25]
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import { startEnvironment, type Environment } from '../e2e/harness/environment.ts';
import { repoRoot, runRoot } from '../e2e/harness/paths.ts';
import { startProcess, stopProcess, type ProcessRecord } from '../e2e/harness/processes.ts';
import { installCrds } from '../operator/api/install.ts';
import { GROUP, SESSION_POOL_PLURAL, VERSION, type SessionPool } from '../operator/api/index.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

const POOLS = Number(arg('pools', '200'));
const IDLE_SECONDS = Number(arg('idle-seconds', '30'));
const SPACING_MS = Number(arg('spacing-ms', '25'));
const CONCURRENCY = arg('concurrency', '4');
const NAMESPACE = 'bench';
const CLK_TCK = 100;
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(`[bench] ${line}`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15)
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function waitUntil(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(250);
  }
}

const poolName = (i: number) => `bench-${String(i).padStart(3, '0')}`;

let env: Environment | undefined;
let operator: ProcessRecord | undefined;
const runDir = path.join(runRoot(), `bench-operator-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);

async function main(): Promise<void> {
  mkdirSync(runDir, { recursive: true });
  log(`starting the environment in ${runDir}`);
  env = await startEnvironment(runDir, { kube: true, log });
  const vars = env.variables();
  const kubeconfig = vars.KUBECONFIG as string;
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  await installCrds(kc);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const endpoints = env.redis ? (vars.SPO_REDIS_NODES?.split(',') ?? []) : [];

  operator = startProcess({
    name: 'operator-bench',
    bin: process.execPath,
    args: [
      ...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []),
      path.join(repoRoot, 'operator/cmd/operator.ts'),
      '--metrics-port=0',
      `--namespace=${NAMESPACE}`,
      '--controllers=pool',
      `--concurrency=${CONCURRENCY}`,
    ],
    runDir,
    cwd: repoRoot,
    env: { ...process.env, ...vars, SPO_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', SPO_POD_NAME: 'bench-operator' },
  });
  log(`operator pid ${operator.pid}; creating ${POOLS} SessionPools`);

  for (let i = 0; i < POOLS; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, POOLS - i) }, (_, j) =>
        custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: SESSION_POOL_PLURAL,
          namespace: NAMESPACE,
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'SessionPool',
            metadata: { name: poolName(i + j) },
            spec: { replicas: 1, worker: { image: 'bench:1' }, store: { endpoints, keyPrefix: 'bench' }, deletionPolicy: 'Retain' },
          },
        }),
      ),
    );
  }
  await waitUntil(
    `${POOLS} Deployments`,
    async () => (await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items.length === POOLS,
    180_000,
  );
  await waitUntil(
    'every pool status observed',
    async () => {
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SESSION_POOL_PLURAL,
        namespace: NAMESPACE,
      })) as { items: SessionPool[] };
      return (
        list.items.filter((p) => p.status?.observedGeneration === p.metadata.generation && p.status?.readyReplicas === 1).length === POOLS
      );
    },
    180_000,
  );
  log('all pools settled; measuring spec change -> Deployment updated');
  await sleep(3_000);

  // Watch Deployments: the moment each one carries the new image.
  const changedAt = new Map<string, number>();
  const updatedAt = new Map<string, number>();
  const watch = new Watch(kc);
  const controller = await watch.watch(
    `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`,
    {},
    (_phase, obj: V1Deployment) => {
      const name = obj.metadata?.name?.replace(/-workers$/, '') ?? '';
      if (!updatedAt.has(name) && obj.spec?.template.spec?.containers[0]?.image === 'bench:2') updatedAt.set(name, performance.now());
    },
    () => undefined,
  );
  await sleep(500);
  for (let i = 0; i < POOLS; i++) {
    const name = poolName(i);
    changedAt.set(name, performance.now());
    void custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: SESSION_POOL_PLURAL,
        namespace: NAMESPACE,
        name,
        body: { spec: { worker: { image: 'bench:2' } } },
      },
      merge,
    );
    await sleep(SPACING_MS);
  }
  await waitUntil(`${POOLS} Deployments updated`, () => updatedAt.size === POOLS, 60_000);
  controller.abort();
  const latencies = [...changedAt].map(([name, t]) => (updatedAt.get(name) ?? NaN) - t).sort((a, b) => a - b);

  log(`waiting for the pools to settle, then ${IDLE_SECONDS} s idle`);
  await sleep(10_000);
  const pid = operator.pid;
  const rss = rssMiB(pid);
  const ticks0 = cpuTicks(pid);
  const t0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const ticks1 = cpuTicks(pid);
  const seconds = (performance.now() - t0) / 1000;
  const port = /"port":(\d+)/.exec(readFileSync(operator.logFile, 'utf8'))?.[1];
  if (!port) log('operator metrics port not found in its log');
  const metrics = port ? await (await fetch(`http://127.0.0.1:${port}/metrics`)).text() : '';
  const interesting = metrics
    .split('\n')
    .filter((l) =>
      /^(spo_operator_reconcile_total|spo_operator_watch_events_total|spo_operator_reconcile_duration_seconds_(sum|count))/.test(l),
    );
  const idleCpuPercent = ((ticks1 - ticks0) / CLK_TCK / seconds) * 100;
  const rssAfter = rssMiB(pid);

  console.log('');
  console.log(`operator benchmark: ${POOLS} SessionPools, one operator process (pool controller, concurrency ${CONCURRENCY})`);
  console.log(
    `  spec change -> Deployment updated (patches ${SPACING_MS} ms apart): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms   (target p99 < 1000 ms)`,
  );
  console.log(`  RSS: ${rss.toFixed(1)} MiB after the run, ${rssAfter.toFixed(1)} MiB after idling   (target < 200 MiB)`);
  if (process.argv.includes('--metrics')) for (const line of interesting) console.log(`  ${line}`);
  console.log(
    `  idle CPU over ${seconds.toFixed(1)} s: ${idleCpuPercent.toFixed(2)} % of one core (${ticks1 - ticks0} ticks)   (target: near zero)`,
  );
}

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
} finally {
  if (operator) await stopProcess(operator, 10_000);
  if (operator && process.env.BENCH_KEEP_LOG) copyFileSync(operator.logFile, process.env.BENCH_KEEP_LOG);
  if (env) await env.stop();
  if (process.exitCode) console.log(`run directory kept: ${runDir}`);
  else rmSync(runDir, { recursive: true, force: true });
}
