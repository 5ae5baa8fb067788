// Resident memory of one Centralized worker, the figure behind the worker pods' default
// requests and limits (operator/controller/pool/pod-security.ts, docs/chart.md "Security"):
// at rest once ready, then after creating BENCH_SESSIONS sessions of about 2 KB. Starts and
// stops its own Redis Cluster (in a temp dir) and worker; stops only what it started, by pid.
//   npm run bench:worker-memory   [BENCH_SESSIONS=2000]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../e2e/harness/paths.ts';
import { freePort } from '../e2e/harness/ports.ts';
import { redisEndpoints, startRedisCluster, stopRedisCluster } from '../e2e/harness/redis-cluster.ts';

const SESSIONS = Math.min(Number(process.env.BENCH_SESSIONS ?? 2000), 20_000);
const NODE = path.join(repoRoot, 'node_modules/.bin/node');
const runDir = mkdtempSync(path.join(tmpdir(), 'spo-worker-memory-'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A /proc/<pid>/status field in MiB. */
function mib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+) kB/.exec(line ?? '')?.[1] ?? NaN) / 1024;
}

const redis = await startRedisCluster(path.join(runDir, 'redis'));
const port = await freePort();
const worker = spawn(NODE, ['operator/cmd/worker.ts'], {
  cwd: repoRoot,
  stdio: 'ignore',
  env: {
    ...process.env,
    SPO_POOL: 'bench-memory',
    SPO_WORKER_NAME: 'w0',
    SPO_HOST: '127.0.0.1',
    SPO_PORT: String(port),
    SPO_REDIS_NODES: redisEndpoints(redis).join(','),
    SPO_LOG_LEVEL: 'warn',
  },
});
const base = `http://127.0.0.1:${port}`;
try {
  let ready = false;
  for (let i = 0; i < 150 && !ready; i++) {
    ready = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!ready) await sleep(200);
  }
  if (!ready) throw new Error('the worker never became ready');
  await sleep(2_000);
  const atRest = mib(worker.pid!, 'VmRSS');
  const body = JSON.stringify({ data: { text: 'a'.repeat(2000) } });
  for (let i = 0; i < SESSIONS; i += 50) {
    const batch = Array.from({ length: Math.min(50, SESSIONS - i) }, () =>
      fetch(`${base}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.text()),
    );
    await Promise.all(batch);
  }
  console.log(`worker resident memory: at rest ${atRest.toFixed(0)} MiB`);
  console.log(
    `  after ${SESSIONS} sessions of 2 KB: ${mib(worker.pid!, 'VmRSS').toFixed(0)} MiB (peak ${mib(worker.pid!, 'VmHWM').toFixed(0)} MiB)`,
  );
} finally {
  worker.kill('SIGTERM');
  await new Promise((resolve) => worker.once('exit', resolve));
  await stopRedisCluster(redis);
  rmSync(runDir, { recursive: true, force: true });
}
