// Benchmark: evacuate 100,000 sessions from one worker to three others, on a Redis Cluster of
// its own (three masters, three replicas, loopback, in a temp dir, stopped at the end), against a
// floor measured in the same run: 100,000 fenced owner swaps (a Lua compare-and-set of owner plus
// an epoch increment, one key each, pipelined from one process). Also the floor of the move protocol in the
// same terms: the three touches docs/migration.md makes of every session (read its owner and epoch, set
// the moving mark if the owner is still the source, the fenced swap that clears the mark), each a command
// per key, pipelined: the evacuation's ratio to it is what the executor adds to the protocol's own work.
// Interleaved rounds (--rounds, default 5), each: the floor, then the evacuation (the executor as
// it runs in the operator: owner operations batched per master, batches pipelined), then the same
// evacuation through the store's per-key calls (the peer: what the executor did before, and what a
// Node user of ioredis writes: one command per session and step). The sessions are created once;
// each evacuation is followed by an untimed one back to the source, so every round starts alike.
// Prints each round, the medians, the ratio to the floor, and where the evacuation's time goes
// (plan, read, marks, moves, index updates, journal, grace, checks; pipelined parts overlap).
// --steps adds the evacuation as the SessionMigration controller drives it (start, then advance
// one 1 s slice per reconcile).
// --commandstats prints each master's Redis-side time per command for the floor and each evacuation;
// --profile DIR writes a CPU profile of each timed evacuation (node:inspector) to DIR.
// Usage: node bench/migration.bench.ts [--sessions 100000] [--rounds 5] [--batch 2000] [--grace 10]
//        [--no-peer] [--steps] [--commandstats] [--profile DIR] [--depths 2,3]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startRedisCluster, stopRedisCluster, redisEndpoints, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { DEFAULTS, MigrationExecutor, type MigrationResult } from '../operator/migration/executor.ts';
import { storeOwnerOps } from '../operator/migration/owner-ops.ts';
import { planEvacuate } from '../operator/migration/planner.ts';
import { clusterClient, createOwned, migrationEnv, silentLogger, type MigrationEnv } from '../operator/migration/testing/int-env.ts';
import { median } from './stats.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const N = Number(arg('sessions', '100000'));
const ROUNDS = Number(arg('rounds', '5'));
const batchSize = Number(arg('batch', String(DEFAULTS.batchSize)));
const graceMs = Number(arg('grace', '10'));
const PEER = !process.argv.includes('--no-peer');
const STEPS = process.argv.includes('--steps');
const COMMANDSTATS = process.argv.includes('--commandstats');
/** --profile DIR: a CPU profile of each timed evacuation (not the floor, not the way back) in DIR. */
const PROFILE_DIR = arg('profile', '');
/** --depths 2,3: the executor's evacuation once per pipeline depth in each round (default: its default). */
const DEPTHS = arg('depths', String(DEFAULTS.pipelineDepth)).split(',').map(Number);
const FLOOR_N = N;
/** The floors send their commands in waves of this many (the last one smaller). */
const WAVE = 10_000;
const wave = (start: number): number => Math.min(WAVE, FLOOR_N - start);
const POOL = 'bench';
const SOURCE = 'w0';
const TARGETS = ['w1', 'w2', 'w3'];

const CAS = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep')
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', tonumber(r[2]) + 1)
return 1
`;

const MARK = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep')
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'mov', ARGV[3])
return 1
`;

const SWAP_CLEARING = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep')
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', tonumber(r[2]) + 1, 'mov', '')
return 1
`;

/** The protocol's three touches of each session (read, mark, swap), each over every session in waves of
 *  WAVE commands, one command per key; seconds of the three, timed together. */
async function protocolFloor(endpoints: string[]): Promise<number> {
  const redis = clusterClient(endpoints);
  try {
    const key = (i: number): string => `bench:floor3:{${i}}`;
    const waves = async (send: (i: number) => Promise<unknown>): Promise<unknown[]> => {
      const replies: unknown[] = [];
      for (let i = 0; i < FLOOR_N; i += WAVE) replies.push(...(await Promise.all(Array.from({ length: wave(i) }, (_, x) => send(i + x)))));
      return replies;
    };
    await waves((i) => redis.hset(key(i), 'own', 'w0', 'ep', '1', 'mov', ''));
    const [mark, swap] = await Promise.all(
      [MARK, SWAP_CLEARING].map(async (source) => {
        await Promise.all(redis.nodes('master').map((n) => n.script('LOAD', source)));
        return (await redis.nodes('master')[0]!.script('LOAD', source)) as string;
      }),
    );
    const started = performance.now();
    const read = (await waves((i) => redis.hmget(key(i), 'own', 'ep'))) as [string, string][];
    const marked = await waves((i) => redis.evalsha(mark!, 1, key(i), read[i]![0], read[i]![1], 'm1'));
    const swapped = await waves((i) => redis.evalsha(swap!, 1, key(i), read[i]![0], read[i]![1], `w${1 + (i % 3)}`));
    const seconds = (performance.now() - started) / 1000;
    const applied = (list: unknown[]) => list.filter((r) => r === 1).length;
    if (applied(marked) !== FLOOR_N || applied(swapped) !== FLOOR_N)
      throw new Error('protocol floor: a step was not applied to every session');
    return seconds;
  } finally {
    redis.disconnect();
  }
}

async function floor(endpoints: string[]): Promise<number> {
  const redis = clusterClient(endpoints);
  try {
    const key = (i: number): string => `bench:floor:{${i}}`;
    for (let i = 0; i < FLOOR_N; i += WAVE) {
      await Promise.all(Array.from({ length: wave(i) }, (_, x) => redis.hset(key(i + x), 'own', 'w0', 'ep', '1')));
    }
    const sha = (await redis.nodes('master')[0]!.script('LOAD', CAS)) as string;
    await Promise.all(redis.nodes('master').map((n) => n.script('LOAD', CAS)));
    const started = performance.now();
    let ok = 0;
    for (let i = 0; i < FLOOR_N; i += WAVE) {
      // Auto-pipelining (enableAutoPipelining) sends each node's share as one pipeline.
      const replies = await Promise.all(
        Array.from({ length: wave(i) }, (_, x) => redis.evalsha(sha, 1, key(i + x), 'w0', '1', `w${1 + ((i + x) % 3)}`)),
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

type Mode = 'batched' | 'per-key' | 'steps' | `depth-${number}`;

interface Evacuation {
  seconds: number;
  parts: Map<string, number>;
}

let uidCounter = 0;

/** Evacuates every session of `sources` to `targets`; `timed` parts are filled in. */
async function evacuate(env: MigrationEnv, sources: string[], targets: string[], mode: Mode): Promise<Evacuation> {
  const depth = mode.startsWith('depth-') ? Number(mode.slice(6)) : undefined;
  const parts = new Map<string, number>();
  const started = performance.now();
  const bySource = new Map<string, string[]>();
  for (const source of sources) bySource.set(source, await env.store.listByOwner(POOL, source));
  const plan = planEvacuate({
    sources: bySource,
    targets: targets.map((name) => ({ name })),
    targetLoads: await env.store.countByOwner(POOL),
  });
  parts.set('plan', performance.now() - started);
  const executor = new MigrationExecutor({
    store: env.store,
    journal: env.journal,
    registry: new Registry(),
    logger: silentLogger,
    batchSize,
    graceMs,
    // As the controller's runner does: the saved plan is read back once, not at every slice.
    planCache: new Map(),
    timings: parts,
    ...(mode === 'per-key' ? { ownerOps: storeOwnerOps(env.store, DEFAULTS.readConcurrency), pipelineDepth: 1 } : {}),
    ...(depth !== undefined ? { pipelineDepth: depth } : {}),
  });
  const uid = `bench-${++uidCounter}-${mode}`;
  let result: MigrationResult;
  if (mode !== 'steps') result = await executor.run({ uid, pool: POOL, plan });
  else {
    await executor.start({ uid, pool: POOL, plan });
    for (;;) {
      const step = await executor.advance(uid, 1000);
      if (step.done) {
        result = step.result;
        break;
      }
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const total = plan.summary.totalSessions;
  if (result.phase !== 'Succeeded' || result.progress.moved !== total)
    throw new Error(`evacuation (${mode}): ${result.phase} ${JSON.stringify(result.progress)}`);
  for (const source of sources) {
    const left = (await env.store.listByOwner(POOL, source)).length;
    if (left !== 0) throw new Error(`evacuation (${mode}): ${left} sessions left on ${source}`);
  }
  // Finished journals keep 7 days; this run's would fill the cluster's memory.
  await env.journal.remove(uid);
  return { seconds, parts };
}

const load = (): string => loadavg()[0]!.toFixed(2);

const inspector = PROFILE_DIR ? new Session() : undefined;
if (inspector) {
  inspector.connect();
  await inspector.post('Profiler.enable');
}

/** Runs `work` under the CPU profiler when --profile is given, writing DIR/<name>.cpuprofile. */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!inspector) return work();
  await inspector.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(path.join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
  }
}

/** Resets every master's command statistics (--commandstats). */
async function resetStats(endpoints: string[]): Promise<void> {
  const redis = clusterClient(endpoints);
  try {
    await redis.cluster('INFO'); // connects and learns the masters
    await Promise.all(redis.nodes('master').map((n) => n.config('RESETSTAT')));
  } finally {
    redis.disconnect();
  }
}

/** Prints the Redis-side time per command on each master since the last reset (--commandstats). */
async function printStats(endpoints: string[], what: string): Promise<void> {
  const redis = clusterClient(endpoints);
  try {
    await redis.cluster('INFO');
    const lines: string[] = [];
    for (const node of redis.nodes('master')) {
      const info = await node.info('commandstats');
      const rows = [...info.matchAll(/cmdstat_(\S+):calls=(\d+),usec=(\d+)/g)]
        .map((m) => ({ cmd: m[1]!, calls: Number(m[2]), usec: Number(m[3]) }))
        .filter((r) => r.cmd !== 'info' && r.cmd !== 'config|resetstat')
        .sort((a, b) => b.usec - a.usec);
      const total = rows.reduce((sum, r) => sum + r.usec, 0);
      lines.push(
        `    ${node.options.port}: ${Math.round(total / 1000)} ms in Redis: ${rows
          .slice(0, 6)
          .map((r) => `${r.cmd} ${r.calls} calls ${Math.round(r.usec / 1000)} ms`)
          .join(', ')}`,
      );
    }
    console.log(`  commandstats, ${what}:\n${lines.join('\n')}`);
  } finally {
    redis.disconnect();
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
  const env = migrationEnv(endpoints, 'bench');
  try {
    for (const worker of [SOURCE, ...TARGETS])
      await env.store.registerWorker({ pool: POOL, worker, endpoint: `${worker}:8080`, draining: false }, 3_600_000);
    const createStart = performance.now();
    await createOwned(env.store, POOL, SOURCE, N, 2000);
    console.log(`created ${N} sessions on ${SOURCE} in ${((performance.now() - createStart) / 1000).toFixed(1)} s`);
    console.log(
      `evacuation of ${N}: batch ${batchSize}, grace ${graceMs} ms, pipeline depth ${DEFAULTS.pipelineDepth}, 1 source -> 3 targets, journal in Redis; ${ROUNDS} interleaved rounds`,
    );
    const batchedModes: Mode[] = DEPTHS.length > 1 ? DEPTHS.map((d): Mode => `depth-${d}`) : ['batched'];
    const modes: Mode[] = [...batchedModes, ...(PEER ? (['per-key'] as const) : []), ...(STEPS ? (['steps'] as const) : [])];
    const floors: number[] = [];
    const protocolFloors: number[] = [];
    const runs = new Map<Mode, Evacuation[]>(modes.map((m) => [m, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      const loadBefore = load();
      if (COMMANDSTATS) await resetStats(endpoints);
      const floorSeconds = await floor(endpoints);
      if (COMMANDSTATS) await printStats(endpoints, `floor, round ${round}`);
      floors.push(floorSeconds);
      const protocolSeconds = await protocolFloor(endpoints);
      protocolFloors.push(protocolSeconds);
      const line = [
        `round ${round} (load ${loadBefore}): floor ${floorSeconds.toFixed(2)} s, protocol floor ${protocolSeconds.toFixed(2)} s`,
      ];
      for (const mode of modes) {
        if (COMMANDSTATS) await resetStats(endpoints);
        const r = await profiled(`${mode}-${round}`, () => evacuate(env, [SOURCE], TARGETS, mode));
        if (COMMANDSTATS) await printStats(endpoints, `${mode}, round ${round}`);
        runs.get(mode)!.push(r);
        line.push(
          `${mode} ${r.seconds.toFixed(2)} s (${(r.seconds / floorSeconds).toFixed(2)}x; protocol floor ${(r.seconds / protocolSeconds).toFixed(2)}x)`,
        );
        // Back to the source, untimed, so the next evacuation starts from the same state.
        await evacuate(env, TARGETS, [SOURCE], 'batched');
      }
      console.log(line.join(', '));
    }
    const floorMedian = median(floors);
    console.log(`\nmedians over ${ROUNDS} rounds (load now ${load()}):`);
    console.log(
      `  floor: ${FLOOR_N} fenced owner swaps (Lua CAS, pipelined): ${floorMedian.toFixed(2)} s = ${Math.round(FLOOR_N / floorMedian)} /s`,
    );
    console.log(
      `  protocol floor: read, mark and swap of ${FLOOR_N} sessions (a command per key and step, pipelined): ${median(protocolFloors).toFixed(2)} s; its ratio to the floor ${median(protocolFloors.map((p, i) => p / floors[i]!)).toFixed(2)}x (median of per-round ratios)`,
    );
    for (const mode of modes) {
      const list = runs.get(mode)!;
      const seconds = median(list.map((r) => r.seconds));
      const ratio = median(list.map((r, i) => r.seconds / floors[i]!));
      const what =
        mode === 'batched'
          ? 'evacuate (executor)'
          : mode.startsWith('depth-')
            ? `evacuate (executor, pipeline ${mode})`
            : mode === 'per-key'
              ? 'evacuate, per-key store calls (peer)'
              : 'evacuate, 1 s slices';
      console.log(
        `  ${what}: ${seconds.toFixed(2)} s, ${Math.round(N / seconds)} sessions/s; ratio to the floor ${(seconds / floorMedian).toFixed(2)}x (median of per-round ratios ${ratio.toFixed(2)}x); to the protocol floor ${median(list.map((r, i) => r.seconds / protocolFloors[i]!)).toFixed(2)}x (median of per-round ratios)`,
      );
      const names = [...new Set(list.flatMap((r) => [...r.parts.keys()]))];
      console.log(
        `    where the time goes (median ms; pipelined parts overlap): ${names.map((n) => `${n} ${Math.round(median(list.map((r) => r.parts.get(n) ?? 0)))}`).join(', ')}`,
      );
    }
  } finally {
    await env.close();
  }
} finally {
  await stop();
}
// Everything is stopped and closed; a client's leftover reconnect timer must not keep the process
// (seen after --commandstats runs).
process.exit(0);
