// Benchmark of the operator, for 200 SessionPools: the time from a spec change to the
// Deployment updated (p50, p99), the operator's memory (RSS) and its CPU while idle, as the
// issue's targets mean them:
//   1. create the pools and wait until every one is Ready, one pod per pool is left (no old pod
//      of a rollout still terminating) and the operator is idle (no reconcile for 3 s);
//   2. steady: change one pool's spec at a time at a steady pace (--rate per second), each
//      measured from the patch to a Deployment watch event showing the change (p50, p99, max);
//   3. burst (reported apart, as throughput): change all pools at once; time until all are updated;
//   4. settle, then RSS (/proc/<pid>/status) and CPU over --idle-seconds (/proc/<pid>/stat), and
//      the reconciles counted meanwhile (idle means none: no polling, no apiserver writes).
// Starts its own environment (Redis Cluster + control plane, in a temp run dir, stopped at the
// end) and the operator as a child process with every controller, as the chart runs it (pool,
// migration and the drain controller inside it; one namespace), with the chart's NODE_OPTIONS
// (override with BENCH_NODE_ARGS). Idle reconciles are reported per controller; with
// BENCH_LOG_LEVEL=debug the operator logs why each key was enqueued (BENCH_KEEP_LOG=<file> keeps it).
// Usage: node bench/operator.bench.ts [--pools 200] [--rate 10] [--idle-seconds 30] [--no-burst]
//        [--controllers pool,migration] [--metrics]
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
const RATE = Number(arg('rate', '10'));
const BURST = !process.argv.includes('--no-burst');
const CONCURRENCY = arg('concurrency', '4');
/** The chart runs every controller (values.yaml operator.controllers). */
const CONTROLLERS = arg('controllers', 'pool,migration,drain');
/** The chart's default (charts/session-pool-operator/values.yaml operator.nodeOptions). */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '--max-semi-space-size=1 --max-old-space-size=192').split(' ').filter(Boolean);
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

async function metricsText(port: string | undefined): Promise<string> {
  return port ? (await fetch(`http://127.0.0.1:${port}/metrics`)).text() : '';
}

function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** A counter summed per value of one label. */
function metricBy(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? '';
    out.set(value, (out.get(value) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

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
      ...NODE_ARGS,
      path.join(repoRoot, 'operator/cmd/operator.ts'),
      '--metrics-port=0',
      `--namespace=${NAMESPACE}`,
      `--controllers=${CONTROLLERS}`,
      `--concurrency=${CONCURRENCY}`,
    ],
    runDir,
    cwd: repoRoot,
    env: { ...process.env, ...vars, SPO_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', SPO_POD_NAME: 'bench-operator' },
  });
  const pid = operator.pid;
  const logFile = operator.logFile;
  log(`operator pid ${pid} (node ${NODE_ARGS.join(' ')}); creating ${POOLS} SessionPools`);
  let port: string | undefined;
  await waitUntil(
    'the operator metrics port',
    () => (port = /"port":(\d+)/.exec(readFileSync(logFile, 'utf8'))?.[1]) !== undefined,
    60_000,
  );
  const reconciles = async () => metricSum(await metricsText(port), 'spo_operator_reconcile_total');

  const listPools = async () =>
    (
      (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace: NAMESPACE })) as {
        items: SessionPool[];
      }
    ).items;
  const settled = async (what: string) => {
    await waitUntil(
      `${what}: every pool Ready and observed`,
      async () =>
        (await listPools()).filter(
          (p) =>
            p.status?.observedGeneration === p.metadata.generation &&
            p.status?.readyReplicas === 1 &&
            p.status?.replicas === 1 &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
            p.status?.conditions?.some((c) => c.type === 'Progressing' && c.status === 'False'),
        ).length === POOLS,
      300_000,
    );
    // The rollouts are over: no old pod left terminating (their deletions are events, not idleness).
    await waitUntil(
      `${what}: one pod per pool`,
      async () => (await core.listNamespacedPod({ namespace: NAMESPACE })).items.length === POOLS,
      300_000,
    );
    // Idle: no reconcile for 3 s.
    let last = await reconciles();
    let quietSince = performance.now();
    await waitUntil(
      `${what}: the operator idle`,
      async () => {
        const now = await reconciles();
        if (now !== last) {
          last = now;
          quietSince = performance.now();
        }
        return performance.now() - quietSince >= 3_000;
      },
      120_000,
    );
  };

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
            // A short drain deadline keeps the pods' grace period short: nothing here removes a
            // terminated pod early (no kubelet), and each rollout waits for its old pod to go.
            spec: {
              replicas: 1,
              worker: { image: 'bench:1' },
              store: { endpoints, keyPrefix: 'bench' },
              maintenance: { drainDeadlineSeconds: 10 },
              deletionPolicy: 'Retain',
            },
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
  await settled('created');
  const rssSettled = rssMiB(pid);

  // Watch Deployments: the moment each one carries the image of the current round.
  let image = '';
  const updatedAt = new Map<string, number>();
  const watch = new Watch(kc);
  // The watch is restarted whenever it ends (the HTTP client closes a watch that has been
  // quiet for minutes, e.g. while the operator settles), so no update goes unseen.
  let watching = true;
  let current: AbortController | undefined;
  const startWatch = async (): Promise<void> => {
    current = await watch.watch(
      `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`,
      {},
      (_phase, obj: V1Deployment) => {
        const name = obj.metadata?.name?.replace(/-workers$/, '') ?? '';
        if (!updatedAt.has(name) && obj.spec?.template.spec?.containers[0]?.image === image) updatedAt.set(name, performance.now());
      },
      () => {
        if (watching) setTimeout(() => void startWatch().catch(() => undefined), 200);
      },
    );
  };
  await startWatch();
  const controller = { abort: () => ((watching = false), current?.abort()) };
  await sleep(500);
  const patchImage = (name: string) =>
    custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: SESSION_POOL_PLURAL,
        namespace: NAMESPACE,
        name,
        body: { spec: { worker: { image } } },
      },
      merge,
    );

  // Steady: one pool at a time, RATE per second.
  log(`steady: changing ${POOLS} pools one at a time, ${RATE} per second`);
  image = 'bench:2';
  updatedAt.clear();
  const changedAt = new Map<string, number>();
  const steadyStart = performance.now();
  for (let i = 0; i < POOLS; i++) {
    const name = poolName(i);
    const due = steadyStart + (i * 1000) / RATE;
    if (due > performance.now()) await sleep(due - performance.now());
    changedAt.set(name, performance.now());
    void patchImage(name);
  }
  await waitUntil(`${POOLS} Deployments updated`, () => updatedAt.size === POOLS, 120_000);
  const steady = [...changedAt].map(([name, t]) => (updatedAt.get(name) ?? NaN) - t).sort((a, b) => a - b);
  await settled('after the steady round');

  // Burst: all pools at once.
  let burst: number[] = [];
  let burstAllMs = NaN;
  if (BURST) {
    log(`burst: changing all ${POOLS} pools at once`);
    image = 'bench:3';
    updatedAt.clear();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: POOLS }, (_, i) => patchImage(poolName(i))));
    const patchedMs = performance.now() - t0;
    await waitUntil(`${POOLS} Deployments updated`, () => updatedAt.size === POOLS, 180_000);
    burst = [...updatedAt.values()].map((t) => t - t0).sort((a, b) => a - b);
    burstAllMs = burst.at(-1) ?? NaN;
    log(`burst patches sent in ${patchedMs.toFixed(0)} ms`);
    await settled('after the burst');
  }
  controller.abort();

  const rss = rssMiB(pid);
  const before = await metricsText(port);
  const ticks0 = cpuTicks(pid);
  const t0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const ticks1 = cpuTicks(pid);
  const seconds = (performance.now() - t0) / 1000;
  const after = await metricsText(port);
  const idleCpuPercent = ((ticks1 - ticks0) / CLK_TCK / seconds) * 100;
  const idleReconciles = metricSum(after, 'spo_operator_reconcile_total') - metricSum(before, 'spo_operator_reconcile_total');
  const byControllerBefore = metricBy(before, 'spo_operator_reconcile_total', 'controller');
  const byController = [...metricBy(after, 'spo_operator_reconcile_total', 'controller')]
    .map(([c, n]) => `${c} ${n - (byControllerBefore.get(c) ?? 0)}`)
    .join(', ');
  const totalByController = [...metricBy(after, 'spo_operator_reconcile_total', 'controller')].map(([c, n]) => `${c} ${n}`).join(', ');
  const watchEvents = metricSum(after, 'spo_operator_watch_events_total') - metricSum(before, 'spo_operator_watch_events_total');
  const rssAfter = rssMiB(pid);
  const mib = (name: string) => (metricSum(after, name) / 1024 / 1024).toFixed(1);

  const f = (n: number) => `${n.toFixed(1)} ms`;
  console.log('');
  console.log(
    `operator benchmark: ${POOLS} SessionPools, one operator process (controllers ${CONTROLLERS}, concurrency ${CONCURRENCY}, node ${NODE_ARGS.join(' ')})`,
  );
  console.log(`  load: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  console.log(
    `  spec change -> Deployment updated, steady ${RATE}/s: p50 ${f(percentile(steady, 50))}, p99 ${f(percentile(steady, 99))}, max ${f(steady.at(-1) ?? NaN)}   (target p99 < 1000 ms)`,
  );
  if (BURST)
    console.log(
      `  burst, all ${POOLS} at once: p50 ${f(percentile(burst, 50))}, p99 ${f(percentile(burst, 99))}, all updated in ${f(burstAllMs)} = ${((POOLS / burstAllMs) * 1000).toFixed(0)} pools/s   (throughput; no target)`,
    );
  console.log(
    `  RSS: ${rssSettled.toFixed(1)} MiB after creating, ${rss.toFixed(1)} MiB after the changes, ${rssAfter.toFixed(1)} MiB after idling   (target < 200 MiB)`,
  );
  console.log(
    `  heap: used ${mib('nodejs_heap_size_used_bytes')} MiB of ${mib('nodejs_heap_size_total_bytes')} MiB, external ${mib('nodejs_external_memory_bytes')} MiB`,
  );
  console.log(
    `  idle CPU over ${seconds.toFixed(1)} s: ${idleCpuPercent.toFixed(2)} % of one core (${ticks1 - ticks0} ticks), ${idleReconciles} reconciles   (target: near zero, no polling)`,
  );
  console.log(`  idle reconciles per controller: ${byController || '(none)'}; watch events received meanwhile: ${watchEvents}`);
  console.log(`  reconciles per controller over the whole run: ${totalByController}`);
  if (process.argv.includes('--metrics'))
    for (const line of after.split('\n').filter((l) => /^(spo_operator_reconcile_total|spo_operator_watch_events_total)/.test(l)))
      console.log(`  ${line}`);
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
