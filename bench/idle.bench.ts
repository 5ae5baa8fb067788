// What idle sessions cost (docs/activation.md): commands/s a pool sends to its Redis Cluster with
// no session (the baseline), right after creating N sessions (N live activations renewing their
// leases), and once they are idle past the pool's idle time (every lease released). Counted with
// INFO commandstats deltas summed over every master (commands run inside Lua scripts included, INFO
// itself excluded), over the same window in each phase. The pool is three Centralized workers
// (heartbeat 5 s) plus what the operator does for a pool: its counts and a sweep once per sweep
// interval (30 s, the default), emulated here with the operator's own functions, one per window.
// Starts and stops its own Redis Cluster and workers, by pid.
//   npm run bench:idle   [BENCH_IDLE_SESSIONS=10000 BENCH_IDLE_SECONDS=45 BENCH_IDLE_WINDOW_SECONDS=30]
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { repoRoot } from '../e2e/harness/paths.ts';
import { freePort } from '../e2e/harness/ports.ts';
import { redisEndpoints, startRedisCluster, stopRedisCluster, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { readCounts } from '../operator/controller/pool/sessions.ts';
import { createSessionStore } from '../operator/store/index.ts';

const SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 10_000);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 45);
const WINDOW_SECONDS = Number(process.env.BENCH_IDLE_WINDOW_SECONDS ?? 30);
const TARGET = 50;
const NODE = path.join(repoRoot, 'node_modules/.bin/node');
const POOL = 'bench/bench-idle';
const runDir = mkdtempSync(path.join(tmpdir(), 'spo-idle-bench-'));
const children: ChildProcess[] = [];
let redis: RedisClusterState | undefined;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startWorker(name: string, nodes: string): Promise<string> {
  const port = await freePort();
  const fd = openSync(path.join(runDir, `${name}.log`), 'a');
  const child = spawn(NODE, ['operator/cmd/worker.ts'], {
    cwd: repoRoot,
    stdio: ['ignore', fd, fd],
    env: {
      ...process.env,
      SPO_POOL: 'bench-idle',
      SPO_POOL_NAMESPACE: 'bench',
      SPO_WORKER_NAME: name,
      SPO_HOST: '127.0.0.1',
      SPO_PORT: String(port),
      SPO_REDIS_NODES: nodes,
      SPO_SESSION_MODE: 'Centralized',
      SPO_IDLE_SECONDS: String(IDLE_SECONDS),
      SPO_LOG_LEVEL: 'warn',
    },
  });
  closeSync(fd);
  children.push(child);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return `http://127.0.0.1:${port}`;
    } catch {
      /* starting */
    }
    if (Date.now() > deadline) throw new Error(`worker ${name} did not start (log ${runDir}/${name}.log)`);
    await sleep(100);
  }
}

/** Commands run so far on the masters (INFO commandstats, INFO calls excluded). */
async function commandsSoFar(masters: Redis[]): Promise<number> {
  let total = 0;
  for (const m of masters) {
    const info = await m.info('commandstats');
    for (const line of info.split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (match && match[1] !== 'info') total += Number(match[2]);
    }
  }
  return total;
}

try {
  redis = await startRedisCluster(runDir);
  const endpoints = redisEndpoints(redis);
  const nodes = endpoints.join(',');
  const all = endpoints.map((e) => {
    const [host, port] = e.split(':');
    return new Redis({ host: host!, port: Number(port), lazyConnect: false });
  });
  const masters: Redis[] = [];
  for (const r of all) if ((await r.info('replication')).includes('role:master')) masters.push(r);
  const workers = [await startWorker('idle-1', nodes), await startWorker('idle-2', nodes), await startWorker('idle-3', nodes)];
  const operatorStore = createSessionStore({ nodes: endpoints });
  const operatorWork = async () => {
    await readCounts(operatorStore, POOL);
    await operatorStore.sweep(POOL);
  };
  /** Commands/s over one window, with the operator's per-interval work once in its middle. */
  const measure = async (seconds: number, withOperator: boolean) => {
    const before = await commandsSoFar(masters);
    const started = performance.now();
    await sleep((seconds * 1000) / 2);
    if (withOperator) await operatorWork();
    await sleep((seconds * 1000) / 2);
    const elapsed = (performance.now() - started) / 1000;
    return ((await commandsSoFar(masters)) - before) / elapsed;
  };

  await sleep(6_000); // every worker has heartbeated
  await operatorWork();
  const baseline = await measure(WINDOW_SECONDS, true);

  const createdAt = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async (_, lane) => {
      for (let i = next++; i < SESSIONS; i = next++) {
        // A kept-alive connection the worker closed as it was reused: sent again (a spare session at worst).
        for (let attempt = 1; ; attempt++) {
          try {
            const r = await fetch(`${workers[(lane + i + attempt) % workers.length]}/v1/sessions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: '{"data":{}}',
            });
            if (r.status !== 201) throw new Error(`create answered ${r.status}`);
            await r.arrayBuffer();
            break;
          } catch (error) {
            if (attempt >= 5 || (error instanceof Error && error.message.startsWith('create answered'))) throw error;
          }
        }
      }
    }),
  );
  const createSeconds = (Date.now() - createdAt) / 1000;
  const live = await measure(10, false);
  const liveCounts = await readCounts(operatorStore, POOL);
  const liveOwned = [...liveCounts.byOwner].filter(([o]) => o !== '').reduce((n, [, c]) => n + c, 0);

  // Past the idle time (and past the index's first re-score of new sessions, 60 s, a once-per-TTL cost),
  // then one sweep: the steady state of an idle pool.
  const steadyAt = createdAt + createSeconds * 1000 + Math.max(IDLE_SECONDS * 1000 + 5_000, 65_000);
  await sleep(Math.max(0, steadyAt - Date.now()));
  await operatorWork();
  const idle = await measure(WINDOW_SECONDS, true);
  const idleCounts = await readCounts(operatorStore, POOL);
  const idleOwned = [...idleCounts.byOwner].filter(([o]) => o !== '').reduce((n, [, c]) => n + c, 0);

  console.log(
    `idle sessions benchmark: ${SESSIONS} sessions, 3 Centralized workers (heartbeat 5 s, idle time ${IDLE_SECONDS} s), operator counts + sweep once per ${WINDOW_SECONDS} s window; INFO commandstats deltas over the 3 masters`,
  );
  console.log(`  no session (baseline):            ${baseline.toFixed(1)} commands/s`);
  console.log(`  ${SESSIONS} live activations:         ${live.toFixed(1)} commands/s  (owned: ${liveOwned})`);
  console.log(
    `  ${SESSIONS} idle past the idle time:  ${idle.toFixed(1)} commands/s  (owned: ${idleOwned}; target < ${TARGET}: ${idle < TARGET ? 'met' : 'NOT met'})`,
  );
  console.log(`  ratio idle / baseline: ${(idle / baseline).toFixed(2)}; live / idle: ${(live / idle).toFixed(0)}`);
  await operatorStore.close();
  for (const r of all) r.disconnect();
} finally {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
  if (redis) await stopRedisCluster(redis);
  rmSync(runDir, { recursive: true, force: true });
}
