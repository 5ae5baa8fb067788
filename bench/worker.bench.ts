// Load benchmark of the worker: the same bounded mixed workload (create, execute, get) sent to
// three Centralized workers (random routing, and session routing: sessions in the Redis Cluster) and to one
// WorkerLocal worker (sessions in memory), in one run on loopback. Prints req/s, p50 and p99
// per operation and overall, and the ratio (what centralizing costs), over interleaved rounds, medians. Starts and stops its
// own Redis Cluster (in a temp dir) and workers; stops only what it started, by pid.
// Then the handler contract's cost: the trivial handler `echo` built in (in process) against the
// same handler through the contract in Python with the SDK (spo_handler.conformance, from the venv
// of `bash scripts/python-env.sh`), and the raw standard-library Python handler, each beside its
// own worker, all WorkerLocal so that no store round trip hides the difference; interleaved
// rounds, medians.
// Then forwarding (docs/activation.md): the same sequential execute requests sent to the worker holding
// the sessions' activations and to another worker, which forwards each one in one hop; interleaved
// rounds, medians; the forwarding cost is the difference of p50s.
//   npm run bench:worker   [BENCH_REQUESTS=6000 BENCH_CONCURRENCY=32 BENCH_MIXED_ROUNDS=5 BENCH_CONTRACT_ROUNDS=7 BENCH_CONTRACT_REQUESTS=400
//                           BENCH_FORWARD_ROUNDS=7 BENCH_FORWARD_REQUESTS=400 BENCH_PART=mixed|contract|forward
//                           BENCH_CPU_PROF=<dir> BENCH_MIXED_CANDIDATES=random,session,single,local]
// BENCH_CPU_PROF=<dir> runs every worker with `node --cpu-prof --cpu-prof-dir <dir>` (one .cpuprofile per
// worker, named after it, written when it exits); `node bench/cpu-prof-top.ts <file>` summarizes one.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../e2e/harness/paths.ts';
import { freePort } from '../e2e/harness/ports.ts';
import { pythonVenv } from '../e2e/harness/pod-containers.ts';
import { redisEndpoints, startRedisCluster, stopRedisCluster, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { WorkerClient } from '../operator/worker/client.ts';
import { median } from './stats.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 6000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const MIXED_ROUNDS = Number(process.env.BENCH_MIXED_ROUNDS ?? 5);
const CONTRACT_ROUNDS = Number(process.env.BENCH_CONTRACT_ROUNDS ?? 7);
const CONTRACT_REQUESTS = Number(process.env.BENCH_CONTRACT_REQUESTS ?? 400);
const FORWARD_ROUNDS = Number(process.env.BENCH_FORWARD_ROUNDS ?? 7);
const FORWARD_REQUESTS = Number(process.env.BENCH_FORWARD_REQUESTS ?? 400);
/** Which parts run: all of them by default. */
const PART = process.env.BENCH_PART ?? 'all';
/** Which of the mixed workload's candidates run (all three by default; a profile of one alone is clearer). */
const MIXED_CANDIDATES = (process.env.BENCH_MIXED_CANDIDATES ?? 'random,session,single,local').split(',');
/** A directory for the workers' CPU profiles (opt-in: profiling slows them). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const NODE = path.join(repoRoot, 'node_modules/.bin/node');
const RAW_HANDLER = path.join(repoRoot, 'operator/worker/contract/conformance/raw_python_handler.py');
const runDir = mkdtempSync(path.join(tmpdir(), 'spo-worker-bench-'));
const children: ChildProcess[] = [];
/** Worker processes by name: their CPU time is read from /proc. */
const workerPids = new Map<string, number>();
let redis: RedisClusterState | undefined;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startWorker(name: string, mode: string, nodes: string, extraEnv: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const fd = openSync(path.join(runDir, `${name}.log`), 'a');
  const profile = CPU_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(CPU_PROF_DIR), '--cpu-prof-name', `${name}.cpuprofile`] : [];
  const child = spawn(NODE, [...profile, 'operator/cmd/worker.ts'], {
    cwd: repoRoot,
    stdio: ['ignore', fd, fd],
    env: {
      ...process.env,
      SPO_POOL: `bench-${mode.toLowerCase()}`,
      SPO_POOL_NAMESPACE: 'bench',
      SPO_WORKER_NAME: name,
      SPO_HOST: '127.0.0.1',
      SPO_PORT: String(port),
      SPO_REDIS_NODES: nodes,
      SPO_SESSION_MODE: mode,
      SPO_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
  });
  closeSync(fd);
  children.push(child);
  if (child.pid !== undefined) workerPids.set(name, child.pid);
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return `127.0.0.1:${port}`;
    } catch {
      /* starting */
    }
    if (Date.now() > deadline) throw new Error(`worker ${name} did not start (log ${runDir}/${name}.log)`);
    await sleep(100);
  }
}

interface Figures {
  requests: number;
  seconds: number;
  byOp: Map<string, number[]>;
}

/** The workload: each step picks create (10%), execute incr (60%) or get (30%) on a known session. */
async function workload(client: WorkerClient): Promise<Figures> {
  const sessions: string[] = [];
  for (let i = 0; i < CONCURRENCY; i++) sessions.push((await client.createSession({ seed: i })).id);
  const byOp = new Map<string, number[]>([
    ['create', []],
    ['execute', []],
    ['get', []],
  ]);
  let issued = 0;
  let rng = 42;
  const random = () => (rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < REQUESTS) {
        issued++;
        const r = random();
        const id = sessions[Math.floor(random() * sessions.length)] as string;
        const t = performance.now();
        let op: string;
        if (r < 0.1) {
          op = 'create';
          sessions.push((await client.createSession({ n: 1 })).id);
        } else if (r < 0.7) {
          op = 'execute';
          await client.execute(id, 'incr', { key: 'n' });
        } else {
          op = 'get';
          await client.getSession(id);
        }
        byOp.get(op)?.push(performance.now() - t);
      }
    }),
  );
  return { requests: REQUESTS, seconds: (performance.now() - started) / 1000, byOp };
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);
}

function summary(f: Figures): { rps: number; p50: number; p99: number; lines: string[] } {
  const all = [...f.byOp.values()].flat().sort((a, b) => a - b);
  const lines = [...f.byOp].map(([op, l]) => {
    const s = [...l].sort((a, b) => a - b);
    return `    ${op.padEnd(8)} n=${String(s.length).padStart(5)}  p50=${pct(s, 50).toFixed(2)} ms  p99=${pct(s, 99).toFixed(2)} ms`;
  });
  return { rps: f.requests / f.seconds, p50: pct(all, 50), p99: pct(all, 99), lines };
}

/** Sequential echo requests on one session: latencies in ms and requests/s. */
async function echoRound(client: WorkerClient, id: string): Promise<{ p50: number; p99: number; rps: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < CONTRACT_REQUESTS; i++) {
    const t = performance.now();
    await client.execute(id, 'echo', { i });
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), rps: CONTRACT_REQUESTS / seconds };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (10 ms ticks: read over many requests). */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** Starts a handler process on a free loopback port (its log in the run dir); returns the port. */
async function startHandler(name: string, command: string[]): Promise<number> {
  const port = await freePort();
  const fd = openSync(path.join(runDir, `${name}.log`), 'a');
  const [program, ...args] = command as [string, ...string[]];
  const child = spawn(program, args, { stdio: ['ignore', fd, fd], env: { ...process.env, SPO_HANDLER_PORT: String(port) } });
  closeSync(fd);
  children.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/contract/v1/ready`)).ok) return port;
    } catch {
      /* starting */
    }
    if (Date.now() > deadline) throw new Error(`handler ${name} did not become ready (log ${runDir}/${name}.log)`);
    await sleep(100);
  }
}

type Round = Awaited<ReturnType<typeof echoRound>>;

/**
 * The built-in echo (in process) vs the same echo through the contract: the Python SDK's
 * (spo_handler.conformance, from the repository's venv) and the raw standard-library handler,
 * each beside its own WorkerLocal worker. Interleaved rounds (the order rotates, so a drift of
 * the machine's load hits all alike), medians per figure.
 */
async function contractBench(nodes: string): Promise<void> {
  const venv = await pythonVenv();
  const sdkPort = await startHandler('sdk-handler', [path.join(venv, 'bin/python'), '-m', 'spo_handler.conformance']);
  const rawPort = await startHandler('raw-handler', ['python3', RAW_HANDLER]);
  const candidates = [
    { label: 'built-in echo (in process):                 ', endpoint: await startWorker('builtin-1', 'WorkerLocal', nodes) },
    {
      label: 'echo through the contract (Python SDK):    ',
      endpoint: await startWorker('contract-sdk-1', 'WorkerLocal', nodes, { SPO_HANDLER_PORT: String(sdkPort) }),
    },
    {
      label: 'echo through the contract (raw stdlib http):',
      endpoint: await startWorker('contract-raw-1', 'WorkerLocal', nodes, { SPO_HANDLER_PORT: String(rawPort) }),
    },
  ].map((c) => ({ ...c, client: new WorkerClient({ endpoints: [c.endpoint], routing: 'session' }), session: '', rounds: [] as Round[] }));
  for (const c of candidates) {
    c.session = (await c.client.createSession({})).id;
    await echoRound(c.client, c.session); // warm-up, not measured
  }
  for (let r = 0; r < CONTRACT_ROUNDS; r++)
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[(r + i) % candidates.length]!;
      c.rounds.push(await echoRound(c.client, c.session));
    }
  const m = (rounds: Round[], pick: (x: Round) => number) => median(rounds.map(pick));
  console.log(
    `handler contract: echo on one session, ${CONTRACT_REQUESTS} sequential requests x ${CONTRACT_ROUNDS} interleaved rounds, medians, WorkerLocal, loopback (load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ${cpus().length} cores)`,
  );
  for (const c of candidates)
    console.log(
      `  ${c.label} ${m(c.rounds, (x) => x.rps).toFixed(0)} req/s  p50=${m(c.rounds, (x) => x.p50).toFixed(3)} ms  p99=${m(c.rounds, (x) => x.p99).toFixed(3)} ms`,
    );
  const [builtin, sdk, raw] = candidates as [(typeof candidates)[number], (typeof candidates)[number], (typeof candidates)[number]];
  const overhead = (c: typeof sdk, label: string) => {
    // Per round, the difference to the built-in of the same round; the median of those.
    const p50 = median(c.rounds.map((x, i) => x.p50 - builtin.rounds[i]!.p50));
    const p99 = median(c.rounds.map((x, i) => x.p99 - builtin.rounds[i]!.p99));
    const ratio = m(c.rounds, (x) => x.rps) / m(builtin.rounds, (x) => x.rps);
    return `  contract overhead, ${label}: p50 +${p50.toFixed(3)} ms (target < 1 ms: ${p50 < 1 ? 'met' : 'NOT met'}), p99 +${p99.toFixed(3)} ms, throughput ratio ${ratio.toFixed(2)}`;
  };
  console.log(overhead(sdk, 'Python SDK'));
  console.log(overhead(raw, 'raw stdlib'));
}

/** Sequential incr requests over the sessions through one worker: latencies in ms and requests/s. */
async function incrRound(base: string, ids: string[]): Promise<{ p50: number; p99: number; rps: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < FORWARD_REQUESTS; i++) {
    const t = performance.now();
    const r = await fetch(`${base}/v1/sessions/${ids[i % ids.length]}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"handler":"incr","args":{"key":"n"}}',
    });
    if (r.status !== 200) throw new Error(`execute answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), rps: FORWARD_REQUESTS / seconds };
}

/** Through the owner against through a non-owner (forwarded in one hop), same sessions, interleaved rounds. */
async function forwardBench(nodes: string): Promise<void> {
  const pool = { SPO_POOL: 'bench-forward', SPO_HEARTBEAT_SECONDS: '1' };
  const owner = `http://${await startWorker('fwd-owner', 'Centralized', nodes, pool)}`;
  const other = `http://${await startWorker('fwd-other', 'Centralized', nodes, pool)}`;
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await fetch(`${owner}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    ids.push(((await r.json()) as { session: { id: string } }).session.id);
  }
  await sleep(1_500); // both registrations listed by the other worker's heartbeat
  const check = await fetch(`${other}/v1/sessions/${ids[0]}/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"handler":"incr","args":{"key":"n"}}',
  });
  if (check.headers.get('x-spo-forwarded-to') !== 'fwd-owner') throw new Error('the non-owner did not forward to the owner');
  await incrRound(owner, ids); // warm-up
  await incrRound(other, ids);
  const direct: { p50: number; p99: number; rps: number }[] = [];
  const forwarded: { p50: number; p99: number; rps: number }[] = [];
  // CPU time per request of each worker, summed over the rounds (a figure the machine's load disturbs less).
  const cpu = { direct: { owner: 0, other: 0 }, forwarded: { owner: 0, other: 0 } };
  const measure = async (base: string, into: { owner: number; other: number }) => {
    const before = [cpuMs(workerPids.get('fwd-owner')), cpuMs(workerPids.get('fwd-other'))] as const;
    const round = await incrRound(base, ids);
    into.owner += cpuMs(workerPids.get('fwd-owner')) - before[0];
    into.other += cpuMs(workerPids.get('fwd-other')) - before[1];
    return round;
  };
  for (let round = 0; round < FORWARD_ROUNDS; round++) {
    // The order alternates, so that a drift of the machine's load hits both alike.
    if (round % 2 === 0) {
      direct.push(await measure(owner, cpu.direct));
      forwarded.push(await measure(other, cpu.forwarded));
    } else {
      forwarded.push(await measure(other, cpu.forwarded));
      direct.push(await measure(owner, cpu.direct));
    }
  }
  const m = (rounds: { p50: number; p99: number; rps: number }[], f: (x: { p50: number; p99: number; rps: number }) => number) =>
    median(rounds.map(f));
  const cost = median(forwarded.map((x, i) => x.p50 - direct[i]!.p50));
  const perRequest = (ms: number) => ((ms / (FORWARD_ROUNDS * FORWARD_REQUESTS)) * 1000).toFixed(0);
  console.log(
    `forwarding: ${FORWARD_ROUNDS} interleaved rounds x ${FORWARD_REQUESTS} sequential execute(incr) over 8 sessions, Centralized x2, medians (load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ${cpus().length} cores)`,
  );
  for (const [label, rounds, used] of [
    ['through the owner:             ', direct, cpu.direct],
    ['through a non-owner (1 hop):   ', forwarded, cpu.forwarded],
  ] as const)
    console.log(
      `  ${label}${m(rounds, (x) => x.rps).toFixed(0)} req/s  p50=${m(rounds, (x) => x.p50).toFixed(3)} ms  p99=${m(rounds, (x) => x.p99).toFixed(3)} ms  CPU/request: owner ${perRequest(used.owner)} us, non-owner ${perRequest(used.other)} us`,
    );
  console.log(
    `  forwarding cost: p50 +${cost.toFixed(3)} ms (target < 1 ms: ${cost < 1 ? 'met' : 'NOT met'}), throughput ratio forwarded/owner ${(m(forwarded, (x) => x.rps) / m(direct, (x) => x.rps)).toFixed(2)}`,
  );
}

/**
 * The mixed workload on three Centralized workers, sent at random (two thirds of the executes then go
 * to a worker that forwards them to the session's activation) and by session (each session's requests
 * to the worker that created it, its activation, as the WorkerLocal side's are), and on one WorkerLocal
 * worker. Interleaved rounds, the order rotating; medians, and the median of the rounds' ratios.
 */
async function mixedBench(nodes: string): Promise<void> {
  const central = [
    await startWorker('central-1', 'Centralized', nodes),
    await startWorker('central-2', 'Centralized', nodes),
    await startWorker('central-3', 'Centralized', nodes),
  ];
  const local = await startWorker('local-1', 'WorkerLocal', nodes);
  // One Centralized worker of a pool of its own: the same number of worker processes as the WorkerLocal side,
  // so that its ratio is the mode's cost alone (on two cores, three workers also pay three processes' fixed costs).
  const single = MIXED_CANDIDATES.includes('single')
    ? await startWorker('central-solo', 'Centralized', nodes, { SPO_POOL: 'bench-solo' })
    : '';
  const centralNames = ['central-1', 'central-2', 'central-3'];
  const candidates = [
    { key: 'random', label: 'Centralized x3, random routing: ', endpoints: central, routing: 'random', names: centralNames },
    { key: 'session', label: 'Centralized x3, session routing:', endpoints: central, routing: 'session', names: centralNames },
    { key: 'single', label: 'Centralized x1:                 ', endpoints: [single], routing: 'session', names: ['central-solo'] },
    { key: 'local', label: 'WorkerLocal x1 (memory):        ', endpoints: [local], routing: 'session', names: ['local-1'] },
  ]
    .filter((c) => MIXED_CANDIDATES.includes(c.key))
    .map((c) => ({ ...c, rounds: [] as ReturnType<typeof summary>[], cpu: 0 }));
  const run = (c: (typeof candidates)[number]) =>
    workload(new WorkerClient({ endpoints: c.endpoints, routing: c.routing as 'random' | 'session' }));
  for (const c of candidates) await run(c); // warm-up (JIT, connections), not measured
  const cpuOf = (names: string[]) => names.reduce((sum, n) => sum + cpuMs(workerPids.get(n)), 0);
  for (let r = 0; r < MIXED_ROUNDS; r++)
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[(r + i) % candidates.length]!;
      const before = cpuOf(c.names);
      c.rounds.push(summary(await run(c)));
      c.cpu += cpuOf(c.names) - before; // the workers' CPU (Redis' own is not counted)
    }
  console.log(
    `worker benchmark: ${REQUESTS} requests, concurrency ${CONCURRENCY}, mix 10% create / 60% execute(incr) / 30% get, loopback, ${MIXED_ROUNDS} interleaved rounds, medians (load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ${cpus().length} cores)`,
  );
  const perRequest = (ms: number) => ((ms / (MIXED_ROUNDS * (REQUESTS + CONCURRENCY))) * 1000).toFixed(0);
  for (const c of candidates) {
    const med = (f: (x: ReturnType<typeof summary>) => number) => median(c.rounds.map(f));
    console.log(
      `  ${c.label} ${med((x) => x.rps).toFixed(0)} req/s  p50=${med((x) => x.p50).toFixed(2)} ms  p99=${med((x) => x.p99).toFixed(2)} ms  workers' CPU/request ${perRequest(c.cpu)} us`,
    );
    const mid = c.rounds.find((x) => x.rps === med((y) => y.rps)) ?? c.rounds[0]!;
    for (const line of mid.lines) console.log(line);
  }
  const localRounds = candidates.find((c) => c.key === 'local')?.rounds;
  if (!localRounds) return;
  for (const c of candidates.filter((x) => x.key !== 'local')) {
    const ratios = c.rounds.map((x, i) => x.rps / localRounds[i]!.rps);
    const ratio = median(ratios);
    console.log(
      `  ratio ${c.label.trim().replace(/:$/, '')} / WorkerLocal x1 req/s (median of rounds): ${ratio.toFixed(2)} (target >= 0.7: ${ratio >= 0.7 ? 'met' : 'NOT met'}); per round ${ratios.map((x) => x.toFixed(2)).join(' ')}`,
    );
  }
}

try {
  redis = await startRedisCluster(runDir);
  const nodes = redisEndpoints(redis).join(',');
  if (PART === 'all' || PART === 'mixed') await mixedBench(nodes);
  if (PART === 'all' || PART === 'forward') await forwardBench(nodes);
  if (PART === 'all' || PART === 'contract') await contractBench(nodes);
} finally {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      // A profiled worker writes its profile as it exits: give it time.
      await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(CPU_PROF_DIR ? 30_000 : 5_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
  if (redis) await stopRedisCluster(redis);
  rmSync(runDir, { recursive: true, force: true });
}
