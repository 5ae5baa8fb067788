// A worker process ends promptly on SIGTERM at any point of its life, its store unreachable
// included: a SIGTERM while it still loads its modules is caught (before the fix it met node's
// default action, and a container's PID 1 drops a signal it has no handler for: a kind drain
// waited out a pod's whole grace period), and the shutdown that follows is bounded, far below
// the drain deadline, with nothing answering at the store's address.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../e2e/harness/paths.ts';
import { freePort } from '../../e2e/harness/ports.ts';
import { waitFor } from '../../e2e/harness/processes.ts';

const DRAIN_DEADLINE_SECONDS = 300;

interface Spawned {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log: () => string;
}

/** A worker whose store address has nothing listening; `hold` delays the load of worker/worker.ts. */
async function spawnWorker(
  dir: string,
  hold?: { marker: string; ms: number },
  extraEnv: Record<string, string> = {},
): Promise<Spawned & { port: number }> {
  const port = await freePort();
  const deadRedis = await freePort();
  const logFile = path.join(dir, `worker-${port}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(
    path.join(repoRoot, 'node_modules/.bin/node'),
    [...(hold ? ['--import', './operator/worker/testing/hold-module.ts'] : []), 'operator/cmd/worker.ts'],
    {
      cwd: repoRoot,
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        SPO_POOL: 'signals',
        SPO_POOL_NAMESPACE: 'default',
        SPO_WORKER_NAME: `signals-${port}`,
        SPO_HOST: '127.0.0.1',
        SPO_PORT: String(port),
        SPO_ADVERTISE_ENDPOINT: `127.0.0.1:${port}`,
        SPO_REDIS_NODES: `127.0.0.1:${deadRedis}`,
        SPO_DRAIN_DEADLINE_SECONDS: String(DRAIN_DEADLINE_SECONDS),
        ...(hold
          ? { SPO_TEST_HOLD_MODULE: '/operator/worker/worker.ts', SPO_TEST_HOLD_MARKER: hold.marker, SPO_TEST_HOLD_MS: String(hold.ms) }
          : {}),
        ...extraEnv,
      },
    },
  );
  closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, log: () => readFileSync(logFile, 'utf8'), port };
}

/** Waits for the exit, far below the drain deadline; SIGKILLs (by its pid) a worker that outlives it. */
async function exitOf(worker: Spawned): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const bound = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 60_000).unref());
  const result = await Promise.race([worker.exited, bound]);
  if (result === 'still running') {
    worker.child.kill('SIGKILL');
    throw new Error(`the worker did not exit within 60 s of SIGTERM (drain deadline ${DRAIN_DEADLINE_SECONDS} s):\n${worker.log()}`);
  }
  return result;
}

describe('worker process: SIGTERM at any point of its life', function () {
  this.timeout(120_000);
  let dir: string;
  const spawned: Spawned[] = [];

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'spo-signals-'));
  });

  after(() => {
    for (const w of spawned) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('catches a SIGTERM that comes while it loads its modules, and exits 0 without a drain deadline wait', async () => {
    const marker = path.join(dir, 'loading');
    const worker = await spawnWorker(dir, { marker, ms: 3_000 });
    spawned.push(worker);
    // The marker: the load of worker/worker.ts began (and is held), so the process is mid start-up.
    await waitFor('the worker to load its modules', () => (existsSync(marker) ? true : undefined), 30_000, 20);
    worker.child.kill('SIGTERM');
    const { code, signal } = await exitOf(worker);
    expect({ code, signal }, worker.log()).to.deep.equal({ code: 0, signal: null });
    expect(worker.log()).to.match(/"signal":"SIGTERM".*"msg":"signal received/);
    expect(worker.log()).to.not.include('shutdown did not finish in time');
  });

  it('drains and exits 0 on SIGTERM once serving, with nothing answering at the store address', async () => {
    const worker = await spawnWorker(dir);
    spawned.push(worker);
    await waitFor('the worker to listen', () => (worker.log().includes('"msg":"worker listening"') ? true : undefined), 30_000, 50);
    worker.child.kill('SIGTERM');
    const { code, signal } = await exitOf(worker);
    expect({ code, signal }, worker.log()).to.deep.equal({ code: 0, signal: null });
    expect(worker.log()).to.include('"msg":"stopped"');
  });

  it('keeps its listener open after SIGTERM for the linger, answering a retryable 503, then exits 0', async () => {
    // A Service's endpoints drop a deleted pod asynchronously: kube-proxy may still send it new
    // connections. Closed at once, they meet a dead address (the kind tier saw a 20 s connect timeout).
    const adminToken = 'a'.repeat(40);
    const worker = await spawnWorker(dir, undefined, { SPO_SHUTDOWN_LINGER_SECONDS: '20', SPO_ADMIN_TOKEN: adminToken });
    spawned.push(worker);
    await waitFor('the worker to listen', () => (worker.log().includes('"msg":"worker listening"') ? true : undefined), 30_000, 50);
    worker.child.kill('SIGTERM');
    await waitFor('the drain to end', () => (worker.log().includes('listener kept open') ? true : undefined), 30_000, 50);
    const answer = await fetch(`http://127.0.0.1:${worker.port}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(answer.status).to.equal(503);
    expect(answer.headers.get('retry-after')).to.equal('1');
    expect(((await answer.json()) as { error: { code: string } }).error.code).to.equal('WORKER_DRAINING');
    // A draining worker keeps its mode: a switch to WorkerLocal now would take sessions into a memory that exits.
    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const modeUrl = `http://127.0.0.1:${worker.port}/admin/mode`;
    const switched = await fetch(modeUrl, { method: 'POST', headers: admin, body: JSON.stringify({ mode: 'WorkerLocal' }) });
    expect(switched.status).to.equal(503);
    expect(((await switched.json()) as { error: { code: string } }).error.code).to.equal('WORKER_DRAINING');
    expect(((await (await fetch(modeUrl, { headers: admin })).json()) as { mode: string }).mode).to.equal('Centralized');
    expect(worker.child.exitCode, 'the worker exited before the linger ended').to.equal(null);
    const { code, signal } = await exitOf(worker);
    expect({ code, signal }, worker.log()).to.deep.equal({ code: 0, signal: null });
    expect(worker.log().indexOf('listener kept open')).to.be.lessThan(worker.log().indexOf('"msg":"stopped"'));
  });
});
