// Session store benchmark: starts its own Redis Cluster (3 masters, 3 replicas, loopback) in
// a temp run dir, then at one concurrency measures raw ioredis GET, redis-benchmark GET and
// the store's get / update / create (ops/s, p50/p99), each as a ratio to raw ioredis GET,
// and Redis memory per stored session for a 1 KiB payload. Stops the cluster at the end.
// Usage: npm run bench:store  (env: BENCH_CONCURRENCY=50 BENCH_OPS=30000 BENCH_MEMORY_SESSIONS=10000)
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { redisEndpoints, startRedisCluster, stopRedisCluster, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { createSessionStore } from '../operator/store/index.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const OPS = Number(process.env.BENCH_OPS ?? 30_000);
const MEMORY_SESSIONS = Number(process.env.BENCH_MEMORY_SESSIONS ?? 10_000);
const PAYLOAD = { blob: 'x'.repeat(1024 - 12) }; // serializes to 1024 bytes
const MAX_PHASE_MS = 30_000;
const ROUNDS = 3;

interface Phase {
  name: string;
  opsPerSec: number;
  p50?: number;
  p99?: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Runs `op` OPS times over CONCURRENCY loops; op gets (worker, i). */
async function measure(name: string, op: (worker: number, i: number) => Promise<unknown>, ops = OPS): Promise<Phase> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      while (next < ops && performance.now() - started < MAX_PHASE_MS) {
        const i = next++;
        const t0 = performance.now();
        await op(worker, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { name, opsPerSec: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function redisBenchmark(state: RedisClusterState): Promise<Phase> {
  const node = state.nodes[0]!;
  const { stdout } = await promisify(execFile)(
    'redis-benchmark',
    [
      '--cluster',
      '-h',
      state.host,
      '-p',
      String(node.port),
      '-t',
      'get',
      '-n',
      String(Math.max(OPS, 100_000)),
      '-c',
      String(CONCURRENCY),
      '-d',
      '1024',
      '-q',
    ],
    { timeout: 120_000 },
  );
  const match = /GET:\s*([\d.]+)\s*requests per second/.exec(stdout.replace(/\r/g, '\n'));
  return { name: 'redis-benchmark --cluster GET', opsPerSec: match ? Number(match[1]) : NaN };
}

async function usedMemory(redis: Cluster): Promise<number> {
  const infos = await Promise.all(redis.nodes('master').map((node) => node.info('memory')));
  return infos.reduce((sum, text) => sum + Number(/used_memory:(\d+)/.exec(text)?.[1] ?? 0), 0);
}

const runDir = mkdtempSync(path.join(tmpdir(), 'spo-bench-store-'));
const state = await startRedisCluster(runDir);
const endpoints = redisEndpoints(state);
const clusterOptions = { enableAutoPipelining: true };
const raw = new Cluster(
  endpoints.map((e) => ({ host: e.split(':')[0], port: Number(e.split(':')[1]) })),
  clusterOptions,
);
const store = createSessionStore({
  nodes: endpoints,
  keyPrefix: 'bench',
  registry: new Registry(),
  logger: pino({ level: 'silent' }),
  degraded: { enabled: true },
});
const phases: Phase[] = [];
try {
  console.log(`store benchmark: 3 masters + 3 replicas on loopback, concurrency ${CONCURRENCY}, ${OPS} ops per phase, 1 KiB payloads`);
  const rawKeys = Array.from({ length: 1000 }, (_, i) => `raw:{k${i}}`);
  await Promise.all(rawKeys.map((k) => raw.set(k, JSON.stringify(PAYLOAD))));
  await measure('warm-up', (_w, i) => raw.get(rawKeys[i % rawKeys.length]!), 5000);
  const ids: string[] = [];
  const create = await measure('store.create', async () => ids.push((await store.create({ pool: 'bench', data: PAYLOAD })).id));
  await measure('warm-up', (_w, i) => store.get(ids[i % ids.length]!), 5000);
  // Each loop updates its own sessions, so versions never conflict.
  const versions = new Map<string, number>();
  let updates = 0;
  const update = async (worker: number) => {
    const id = ids[(worker + CONCURRENCY * (updates++ % 20)) % ids.length]!;
    const v = versions.get(id) ?? 1;
    const rec = await store.update(id, { ...PAYLOAD, n: updates }, { expectedVersion: v });
    versions.set(id, rec.version);
  };
  // Interleaved rounds (raw GET, store.get, store.update), so load from elsewhere on the
  // machine weighs on each about equally; the figures are over all rounds.
  const rounds: Record<string, Phase[]> = { raw: [], get: [], update: [] };
  for (let round = 0; round < ROUNDS; round++) {
    rounds.raw!.push(await measure('raw ioredis GET', (_w, i) => raw.get(rawKeys[i % rawKeys.length]!), OPS / ROUNDS));
    rounds.get!.push(await measure('store.get', (_w, i) => store.get(ids[(i * 7919) % ids.length]!), OPS / ROUNDS));
    rounds.update!.push(await measure('store.update', (w) => update(w), OPS / ROUNDS));
  }
  const combine = (name: string, list: Phase[]): Phase => ({
    name,
    opsPerSec: list.length / list.reduce((sum, p) => sum + 1 / p.opsPerSec, 0),
    p50: list.reduce((sum, p) => sum + (p.p50 ?? 0), 0) / list.length,
    p99: Math.max(...list.map((p) => p.p99 ?? 0)),
  });
  const rawGet = combine('raw ioredis GET', rounds.raw!);
  phases.push(rawGet, await redisBenchmark(state), combine('store.get', rounds.get!), combine('store.update', rounds.update!), create);

  console.log('');
  console.log(`${'phase'.padEnd(32)}${'ops/s'.padStart(12)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'x raw GET'.padStart(12)}`);
  for (const phase of phases) {
    console.log(
      `${phase.name.padEnd(32)}${phase.opsPerSec.toFixed(0).padStart(12)}${(phase.p50?.toFixed(3) ?? '-').padStart(10)}${(phase.p99?.toFixed(3) ?? '-').padStart(10)}${(phase.opsPerSec / rawGet.opsPerSec).toFixed(2).padStart(12)}`,
    );
  }
  const ratio = (name: string) => (phases.find((p) => p.name === name)?.opsPerSec ?? 0) / rawGet.opsPerSec;
  console.log(
    `\ntargets: get >= 0.60 x raw (${ratio('store.get').toFixed(2)}: ${ratio('store.get') >= 0.6 ? 'met' : 'MISSED'}), update >= 0.40 x raw (${ratio('store.update').toFixed(2)}: ${ratio('store.update') >= 0.4 ? 'met' : 'MISSED'})`,
  );

  // Memory per session: a fresh pool, used_memory summed over masters before and after.
  const memStore = createSessionStore({ nodes: endpoints, keyPrefix: 'mem', registry: new Registry(), logger: pino({ level: 'silent' }) });
  try {
    await memStore.create({ pool: 'mem', data: PAYLOAD }); // scripts loaded, index keys exist
    const before = await usedMemory(raw);
    let made = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (made < MEMORY_SESSIONS) {
          made++;
          await memStore.create({ pool: 'mem', data: PAYLOAD });
        }
      }),
    );
    const after = await usedMemory(raw);
    console.log(
      `memory: ${((after - before) / made).toFixed(0)} bytes of Redis memory (masters, INFO used_memory delta) per session with a 1 KiB payload, over ${made} sessions (hash + pool-index entry)`,
    );
  } finally {
    await memStore.close();
  }
} finally {
  await store.close();
  raw.disconnect();
  await stopRedisCluster(state);
  rmSync(runDir, { recursive: true, force: true });
}
