// Benchmark: evacuate 10,000 then 100,000 sessions from one worker to three others, on a Redis
// Cluster of its own (three masters, three replicas, loopback, in a temp dir, stopped at the
// end), and compare with a floor measured in the same run: 100,000 fenced owner swaps (a Lua
// compare-and-set of owner plus an epoch increment, one key each, pipelined from one process).
// Each size runs twice: in one executor call (run), and as the SessionMigration controller drives
// it, start() then advance() one 1 s slice per reconcile (the journal re-read at every slice).
// Usage: node bench/migration.bench.ts [--sizes 10000,100000] [--batch 2000] [--grace 10]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startRedisCluster, stopRedisCluster, redisEndpoints, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { DEFAULTS, MigrationExecutor } from '../operator/migration/executor.ts';
import { planEvacuate } from '../operator/migration/planner.ts';
import { clusterClient, createOwned, migrationEnv, silentLogger } from '../operator/migration/testing/int-env.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const sizes = arg('sizes', '10000,100000').split(',').map(Number);
const batchSize = Number(arg('batch', String(DEFAULTS.batchSize)));
const graceMs = Number(arg('grace', '10'));
const FLOOR_N = 100_000;

const CAS = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep')
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', tonumber(r[2]) + 1)
return 1
`;

async function floor(endpoints: string[]): Promise<number> {
  const redis = clusterClient(endpoints);
  try {
    const key = (i: number): string => `bench:floor:{${i}}`;
    for (let i = 0; i < FLOOR_N; i += 10_000) {
      await Promise.all(Array.from({ length: 10_000 }, (_, x) => redis.hset(key(i + x), 'own', 'w0', 'ep', '1')));
    }
    const sha = (await redis.nodes('master')[0]!.script('LOAD', CAS)) as string;
    await Promise.all(redis.nodes('master').map((n) => n.script('LOAD', CAS)));
    const started = performance.now();
    let ok = 0;
    for (let i = 0; i < FLOOR_N; i += 10_000) {
      // Auto-pipelining (enableAutoPipelining) sends each node's share as one pipeline.
      const replies = await Promise.all(
        Array.from({ length: 10_000 }, (_, x) => redis.evalsha(sha, 1, key(i + x), 'w0', '1', `w${1 + ((i + x) % 3)}`)),
      );
      for (const value of replies) if (value === 1) ok++;
    }
    const seconds = (performance.now() - started) / 1000;
    if (ok !== FLOOR_N) throw new Error(`floor: only ${ok} of ${FLOOR_N} swaps applied`);
    return seconds;
  } finally {
    redis.disconnect();
  }
}

type Mode = 'run' | 'steps';

async function evacuate(
  endpoints: string[],
  n: number,
  mode: Mode,
): Promise<{ seconds: number; moved: number; createSeconds: number; steps: number }> {
  const env = migrationEnv(endpoints, `bench-${n}-${mode}`);
  const pool = `bench-${n}-${mode}`;
  try {
    for (const worker of ['w0', 'w1', 'w2', 'w3'])
      await env.store.registerWorker({ pool, worker, endpoint: `${worker}:8080`, draining: false }, 3_600_000);
    const createStart = performance.now();
    await createOwned(env.store, pool, 'w0', n, 2000);
    const createSeconds = (performance.now() - createStart) / 1000;
    const started = performance.now();
    const plan = planEvacuate({
      sources: new Map([['w0', await env.store.listByOwner(pool, 'w0')]]),
      targets: ['w1', 'w2', 'w3'].map((name) => ({ name })),
      targetLoads: await env.store.countByOwner(pool),
    });
    const executor = new MigrationExecutor({
      store: env.store,
      journal: env.journal,
      registry: new Registry(),
      logger: silentLogger,
      batchSize,
      graceMs,
      // As the controller's runner does: the saved plan is read back once, not at every slice.
      planCache: new Map(),
    });
    const uid = `bench-${n}-${mode}`;
    let steps = 1;
    let result;
    if (mode === 'run') result = await executor.run({ uid, pool, plan });
    else {
      await executor.start({ uid, pool, plan });
      for (;;) {
        steps += 1;
        const step = await executor.advance(uid, 1000);
        if (step.done) {
          result = step.result;
          break;
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    if (result.phase !== 'Succeeded' || result.progress.moved !== n)
      throw new Error(`evacuation of ${n}: ${result.phase} ${JSON.stringify(result.progress)}`);
    const left = (await env.store.listByOwner(pool, 'w0')).length;
    if (left !== 0) throw new Error(`evacuation of ${n}: ${left} sessions left on the source`);
    return { seconds, moved: result.progress.moved, createSeconds, steps };
  } finally {
    await env.close();
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'spo-bench-migration-'));
let state: RedisClusterState | undefined;
const stop = async (): Promise<void> => {
  if (state) await stopRedisCluster(state);
  state = undefined;
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => void stop().then(() => process.exit(130)));
try {
  console.log(`starting a Redis Cluster in ${dir} ...`);
  state = await startRedisCluster(dir);
  const endpoints = redisEndpoints(state);
  const floorSeconds = await floor(endpoints);
  console.log(
    `floor: ${FLOOR_N} fenced owner swaps (Lua CAS, pipelined) in ${floorSeconds.toFixed(2)} s = ${Math.round(FLOOR_N / floorSeconds)} /s`,
  );
  console.log(`evacuation: batch ${batchSize}, grace ${graceMs} ms, 1 source -> 3 targets, journal in Redis`);
  for (const n of sizes) {
    const floorForN = (floorSeconds * n) / FLOOR_N;
    for (const mode of ['run', 'steps'] as const) {
      const r = await evacuate(endpoints, n, mode);
      const how = mode === 'run' ? 'one call' : `${r.steps} steps of 1 s`;
      console.log(
        `evacuate ${n} (${how}): ${r.seconds.toFixed(2)} s, ${Math.round(n / r.seconds)} sessions/s, ${(r.seconds / floorForN).toFixed(1)}x the floor for ${n} (creating them took ${r.createSeconds.toFixed(1)} s)`,
      );
    }
  }
} finally {
  await stop();
}
