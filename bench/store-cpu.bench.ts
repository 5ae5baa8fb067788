// Where the CPU of a store operation goes: client (this process), Redis masters and replicas, in µs
// per operation, against raw ioredis GET and a script that only SETs the same 1 KiB value (the floor of
// a replicated scripted write). Starts its own Redis Cluster (3 masters, 3 replicas, loopback), runs
// each phase once after a warm-up, and stops the cluster. CPU times come from /proc (Linux).
// Usage: node_modules/.bin/node bench/store-cpu.bench.ts   (env: BENCH_OPS=40000 BENCH_CONCURRENCY=50)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { redisEndpoints, startRedisCluster, stopRedisCluster } from '../e2e/harness/redis-cluster.ts';
import { createSessionStore } from '../operator/store/index.ts';

const OPS = Number(process.env.BENCH_OPS ?? 40_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const KEYS = 1000;
const PAYLOAD = { blob: 'x'.repeat(1024 - 12) };

const runDir = mkdtempSync(path.join(tmpdir(), 'spo-bench-store-cpu-'));
const state = await startRedisCluster(runDir);
const endpoints = redisEndpoints(state);
const raw = new Cluster(
  endpoints.map((e) => ({ host: e.split(':')[0], port: Number(e.split(':')[1]) })),
  { enableAutoPipelining: true },
);
const direct = state.nodes.map((n) => new Redis({ host: state.host, port: n.port }));
const store = createSessionStore({ nodes: endpoints, keyPrefix: 'bench', registry: new Registry(), logger: pino({ level: 'silent' }) });
// The same sessions through a store without the degraded-mode cache: no header known, so every update is UPDATE.
const uncached = createSessionStore({
  nodes: endpoints,
  keyPrefix: 'bench',
  registry: new Registry(),
  logger: pino({ level: 'silent' }),
  degraded: { enabled: false },
});
try {
  const nodes = await Promise.all(
    direct.map(async (n) => ({
      role: String((await n.role())[0]) === 'master' ? 'master' : 'replica',
      pid: Number(/process_id:(\d+)/.exec(await n.info('server'))?.[1]),
    })),
  );
  /** CPU time (µs) used so far by the Redis processes of one role. */
  const redisCpu = (role: string) =>
    nodes
      .filter((n) => n.role === role)
      .reduce((sum, { pid }) => {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return sum + (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime, at 100 ticks/s
      }, 0);

  const value = JSON.stringify(PAYLOAD);
  const ids: string[] = [];
  for (let i = 0; i < KEYS; i++) ids.push((await store.create({ pool: 'bench', data: PAYLOAD })).id);
  const rawKeys = ids.map((id) => `bench:r:{bench|${id}}`); // the shape of the sessions' keys
  await Promise.all(rawKeys.map((k) => raw.set(k, value)));
  const setOnly = "redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') return 1";
  const setOnlySha = (await Promise.all(raw.nodes('master').map((n) => n.script('LOAD', setOnly))))[0] as string;
  const at = (i: number) => (i * 7919) % KEYS;
  const versions = new Map<string, number>();
  const turns = new Array<number>(CONCURRENCY).fill(0);
  let n = 0;
  const update = async (w: number, through = store) => {
    const id = ids[(w + CONCURRENCY * (turns[w]!++ % Math.max(1, Math.floor(KEYS / CONCURRENCY)))) % KEYS]!;
    const rec = await through.update(id, { ...PAYLOAD, n: n++ }, { pool: 'bench', expectedVersion: versions.get(id) ?? 1 });
    versions.set(id, rec.version);
  };
  const phases: [string, (w: number, i: number) => Promise<unknown>][] = [
    ['raw ioredis GET', (_w, i) => raw.get(rawKeys[at(i)]!)],
    ['script: SET of 1 KiB only', (_w, i) => raw.evalsha(setOnlySha, 1, rawKeys[at(i)]!, `${value}${i}`)],
    ['store.get', (_w, i) => store.get(ids[at(i)]!, { pool: 'bench' })],
    ['store.update (UPDATE only)', (w) => update(w, uncached)],
    // After the uncached store's writes this store's cached headers are stale; its warm-up's fallbacks refresh them.
    ['store.update', (w) => update(w)],
  ];
  const run = async (op: (w: number, i: number) => Promise<unknown>, ops: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, w) => {
        while (next < ops) await op(w, next++);
      }),
    );
  };
  console.log(`store CPU benchmark: ${OPS} ops per phase, concurrency ${CONCURRENCY}, ${KEYS} keys, 1 KiB payloads; µs of CPU per op`);
  console.log(`${'phase'.padEnd(28)}${'ops/s'.padStart(9)}${'client'.padStart(9)}${'masters'.padStart(9)}${'replicas'.padStart(10)}`);
  for (const [name, op] of phases) {
    await run(op, 5000);
    const started = performance.now();
    const client0 = process.cpuUsage();
    const masters0 = redisCpu('master');
    const replicas0 = redisCpu('replica');
    await run(op, OPS);
    const client = process.cpuUsage(client0);
    const rate = OPS / ((performance.now() - started) / 1000);
    const perOp = (us: number) => (us / OPS).toFixed(1).padStart(9);
    console.log(
      `${name.padEnd(28)}${rate.toFixed(0).padStart(9)}${perOp(client.user + client.system)}${perOp(redisCpu('master') - masters0)}${perOp(redisCpu('replica') - replicas0).padStart(10)}`,
    );
  }
} finally {
  await store.close();
  await uncached.close();
  raw.disconnect();
  direct.forEach((d) => d.disconnect());
  await stopRedisCluster(state);
  rmSync(runDir, { recursive: true, force: true });
}
