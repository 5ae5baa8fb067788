// Benchmark of the operator, for 200 SessionPools: the time from a spec change to the
// Deployment updated (p50, p99), the operator's memory (RSS) and its CPU while idle, as the
// issue's targets mean them:
//   1. create the pools and wait until every one is Ready, one pod per pool is left (no old pod
//      of a rollout still terminating) and the operator is idle (no reconcile for 3 s);
//   2. steady: change one pool's spec at a time at a steady pace (--rate per second), each
//      measured from the patch to a Deployment watch event showing the change (p50, p99, max);
//   3. burst (reported apart, as throughput): change all pools at once; time until all are updated;
//   4. settle, then RSS (/proc/<pid>/status) and CPU over --idle-seconds (/proc/<pid>/stat), and
//      the reconciles counted meanwhile (idle means none: no polling, no apiserver writes);
//   5. RSS rounds (--rounds, 5): that operator stopped, each round starts a fresh operator process
//      of each kind, the build the image ships and the same-run baseline (--baseline: `before`,
//      the sources with @kubernetes/client-node loaded whole, i.e. the operator before issue 15;
//      or `sources`, the sources as they are, type stripping), in alternating order, against the
//      same 200 pools; each is measured once its caches are synced, every pool reconciled and it
//      has been idle for --round-idle-seconds; prints every round, the medians and their ratio.
// Starts its own environment (Redis Cluster + control plane, in a temp run dir, stopped at the
// end) and the operator as a child process with every controller, as the chart runs it (pool,
// migration and the drain controller inside it; one namespace), with the chart's NODE_OPTIONS
// (override with BENCH_NODE_ARGS), built first as the image builds it (`npm run build`, into
// dist/; --no-build runs the existing dist/; --entry sources runs the sources in phases 1-4).
// Idle reconciles are reported per controller; with BENCH_LOG_LEVEL=debug the operator logs why
// each key was enqueued (BENCH_KEEP_LOG=<file> keeps it).
// Usage: node bench/operator.bench.ts [--pools 200] [--rate 10] [--idle-seconds 30] [--no-burst]
//        [--controllers pool,migration] [--metrics] [--rounds 5] [--round-idle-seconds 10]
//        [--entry built|sources|before] [--baseline before|sources] [--no-build]
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
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
import { runRoot } from '../e2e/harness/paths.ts';
import { stopProcess, type ProcessRecord } from '../e2e/harness/processes.ts';
import { installCrds } from '../operator/api/install.ts';
import { GROUP, SESSION_POOL_PLURAL, VERSION, type SessionPool } from '../operator/api/index.ts';
import {
  CLK_TCK,
  ENTRIES,
  buildOperator,
  cpuTicks,
  loadAverage,
  metricBy,
  metricSum,
  metricsText,
  rssMiB,
  sleep,
  startOperatorProcess,
  waitUntil,
  type OperatorEntry,
  type OperatorProcess,
} from './operator-process.ts';
import { median, percentile } from './stats.ts';

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
const MALLOC_ARENAS = process.env.BENCH_MALLOC_ARENA_MAX ?? '2';
/** --heap-snapshot <file>: after idling, the operator writes a heap snapshot there (SIGUSR2); bench/heap-top.ts summarises it. */
const HEAP_SNAPSHOT = arg('heap-snapshot', '');
/** The operator of phases 1-4: the build the image ships (bench/operator-process.ts ENTRIES). */
const ENTRY = arg('entry', 'built') as OperatorEntry;
const ROUNDS = Number(arg('rounds', '5'));
/** The rounds' same-run baseline: `before` (sources, client whole) or `sources` (sources, lean client). */
const BASELINE = arg('baseline', 'before') as OperatorEntry;
const describe = (entry: OperatorEntry) => `${[ENTRIES[entry].file, ...ENTRIES[entry].args].join(' ')}: ${ENTRIES[entry].what}`;
const ROUND_IDLE_SECONDS = Number(arg('round-idle-seconds', '10'));
const NAMESPACE = 'bench';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const log = (line: string) => console.log(`[bench] ${line}`);

const poolName = (i: number) => `bench-${String(i).padStart(3, '0')}`;

let env: Environment | undefined;
let operator: ProcessRecord | undefined;
/** The operator of the RSS round under way, stopped at the end of each round (or on failure). */
let roundOperator: ProcessRecord | undefined;
const runDir = path.join(runRoot(), `bench-operator-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);

/** Waits until the operator has run at least `atLeast` reconciles and then none for 3 s. */
async function idle(what: string, port: string, atLeast = 0): Promise<void> {
  const reconciles = async () => metricSum(await metricsText(port), 'spo_operator_reconcile_total');
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
      return now >= atLeast && performance.now() - quietSince >= 3_000;
    },
    300_000,
  );
}

interface RoundFigures {
  rss: number;
  heapUsed: number;
  external: number;
}

/**
 * One RSS round's operator: started against the pools already there, measured once its caches
 * are synced, every pool reconciled once and it has been idle for ROUND_IDLE_SECONDS, then stopped.
 */
async function rssRound(name: string, started: Promise<OperatorProcess>): Promise<RoundFigures> {
  const { record, port } = await started;
  roundOperator = record;
  try {
    await idle(name, port, POOLS);
    await sleep(ROUND_IDLE_SECONDS * 1000);
    const text = await metricsText(port);
    const mib = (metric: string) => metricSum(text, metric) / 1024 / 1024;
    return { rss: rssMiB(record.pid), heapUsed: mib('nodejs_heap_size_used_bytes'), external: mib('nodejs_external_memory_bytes') };
  } finally {
    await stopProcess(record, 10_000);
    roundOperator = undefined;
  }
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

  if (!process.argv.includes('--no-build')) {
    log('building the operator as the image does (tsc -p tsconfig.build.json into dist/)');
    await buildOperator();
  }
  const start = (name: string, entry: OperatorEntry, nodeArgs: string[]): Promise<OperatorProcess> =>
    startOperatorProcess({
      name,
      entry,
      runDir,
      nodeArgs,
      args: ['--metrics-port=0', `--namespace=${NAMESPACE}`, `--controllers=${CONTROLLERS}`, `--concurrency=${CONCURRENCY}`],
      mallocArenas: MALLOC_ARENAS,
      env: { ...process.env, ...vars, SPO_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', SPO_POD_NAME: name },
    });
  const snapshotArgs = HEAP_SNAPSHOT ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${runDir}`] : [];
  const main = await start('operator-bench', ENTRY, [...NODE_ARGS, ...snapshotArgs]);
  operator = main.record;
  const { pid } = operator;
  const { port } = main;
  log(`operator pid ${pid} (${describe(ENTRY)}, node ${NODE_ARGS.join(' ')}); creating ${POOLS} SessionPools`);

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
    await idle(what, port);
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
    // Generous: on this shared machine under a load of 30 the operator reconciled ~1 new pool/s.
    600_000,
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
  await waitUntil(`${POOLS} Deployments updated`, () => updatedAt.size === POOLS, 300_000);
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
    await waitUntil(`${POOLS} Deployments updated`, () => updatedAt.size === POOLS, 300_000);
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
  if (HEAP_SNAPSHOT) await heapSnapshot(pid, HEAP_SNAPSHOT);
  const mib = (name: string) => (metricSum(after, name) / 1024 / 1024).toFixed(1);

  const f = (n: number) => `${n.toFixed(1)} ms`;
  console.log('');
  console.log(
    `operator benchmark: ${POOLS} SessionPools, one operator process (${describe(ENTRY)}, controllers ${CONTROLLERS}, concurrency ${CONCURRENCY}, node ${NODE_ARGS.join(' ')}, MALLOC_ARENA_MAX ${MALLOC_ARENAS || 'unset'})`,
  );
  console.log(`  load: ${loadAverage()}`);
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

  if (ROUNDS > 0) await rssRounds(start);
}

/**
 * RSS rounds: the operator of phases 1-4 stopped, a fresh operator of each kind per round, the
 * order alternating (built first in odd rounds), so that both see the same machine load.
 */
async function rssRounds(start: (name: string, entry: OperatorEntry, nodeArgs: string[]) => Promise<OperatorProcess>): Promise<void> {
  // Stopped here; the finally below stops it again only if still running (and keeps its log).
  if (operator) await stopProcess(operator, 10_000);
  const entries: OperatorEntry[] = ['built', BASELINE];
  const figures: Record<OperatorEntry, RoundFigures[]> = { built: [], sources: [], before: [] };
  console.log('');
  console.log(
    `RSS rounds: ${ROUNDS} interleaved rounds, in each a fresh operator of each kind with ${POOLS} pools (synced, every pool reconciled, then idle ${ROUND_IDLE_SECONDS} s); node ${NODE_ARGS.join(' ')}, MALLOC_ARENA_MAX ${MALLOC_ARENAS || 'unset'}`,
  );
  const show = (r: RoundFigures) => `RSS ${r.rss.toFixed(1)} MiB (heap used ${r.heapUsed.toFixed(1)}, external ${r.external.toFixed(1)})`;
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? entries : [...entries].reverse();
    const line: string[] = [];
    for (const entry of order) {
      const result = await rssRound(`round ${round} ${entry}`, start(`operator-round-${round}-${entry}`, entry, NODE_ARGS));
      figures[entry].push(result);
      line.push(`${entry} ${show(result)}`);
    }
    console.log(`  round ${round}: ${line.join('; ')}; load ${loadAverage()}`);
  }
  const medianOf = (entry: OperatorEntry, key: keyof RoundFigures) => median(figures[entry].map((r) => r[key]));
  for (const entry of entries)
    console.log(
      `  median ${entry.padEnd(7)} (${describe(entry)}): RSS ${medianOf(entry, 'rss').toFixed(1)} MiB, heap used ${medianOf(entry, 'heapUsed').toFixed(1)} MiB, external ${medianOf(entry, 'external').toFixed(1)} MiB`,
    );
  const ratios = figures.built.map((r, i) => r.rss / (figures[BASELINE][i] as RoundFigures).rss);
  console.log(
    `  RSS built / ${BASELINE}: ${(medianOf('built', 'rss') / medianOf(BASELINE, 'rss')).toFixed(3)} (median of per-round ratios ${median(ratios).toFixed(3)}); target: the built operator's median < 150 MiB (issue 15); load ${loadAverage()}`,
  );
}

/** Signals the operator to write a heap snapshot into the run directory and moves it to `target` once written. */
async function heapSnapshot(pid: number, target: string): Promise<void> {
  const existing = new Set(readdirSync(runDir));
  process.kill(pid, 'SIGUSR2');
  let file = '';
  let size = -1;
  await waitUntil(
    'the heap snapshot written',
    () => {
      file ||= readdirSync(runDir).find((f) => f.endsWith('.heapsnapshot') && !existing.has(f)) ?? '';
      if (!file) return false;
      const now = statSync(path.join(runDir, file)).size;
      const stable = now > 0 && now === size;
      size = now;
      return stable;
    },
    120_000,
  );
  await sleep(1000);
  renameSync(path.join(runDir, file), target);
  log(`heap snapshot: ${target} (${(size / 1024 / 1024).toFixed(1)} MiB); summary: node bench/heap-top.ts ${target}`);
}

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
} finally {
  if (roundOperator) await stopProcess(roundOperator, 10_000);
  if (operator) await stopProcess(operator, 10_000);
  if (operator && process.env.BENCH_KEEP_LOG) copyFileSync(operator.logFile, process.env.BENCH_KEEP_LOG);
  if (env) await env.stop();
  if (process.exitCode) console.log(`run directory kept: ${runDir}`);
  else rmSync(runDir, { recursive: true, force: true });
}
