// Three real worker processes (`node operator/cmd/worker.ts`) on the real Redis Cluster: a
// session's requests sent to random workers stay consistent; anonymous runs never share a
// session; a SIGKILLed worker loses no acknowledged write; SIGTERM drains; mode switches keep
// every session. Each worker is started here and stopped by its pid.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../e2e/harness/paths.ts';
import { freePort } from '../../e2e/harness/ports.ts';
import { waitFor } from '../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore } from '../store/index.ts';
import type { SessionStore } from '../store/types.ts';
import { WorkerApiError, WorkerClient } from './client.ts';
import type { SessionMode } from './backends.ts';

const NODE = path.join(repoRoot, 'node_modules/.bin/node');
const poolName = `wk-int-${Date.now().toString(36)}`;
/** The pool identity the workers use in the store (SPO_POOL_NAMESPACE/SPO_POOL). */
const pool = `default/${poolName}`;
const logDir = path.join(tmpdir(), `spo-${poolName}`);
const adminToken = randomBytes(32).toString('hex');

interface Running {
  name: string;
  port: number;
  child: ChildProcess;
  exited: Promise<number | null>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startWorker(name: string, port: number, mode: SessionMode): Promise<Running> {
  mkdirSync(logDir, { recursive: true });
  const fd = openSync(path.join(logDir, `${name}.log`), 'a');
  const child = spawn(NODE, ['operator/cmd/worker.ts'], {
    cwd: repoRoot,
    stdio: ['ignore', fd, fd],
    env: {
      ...process.env,
      SPO_POOL: poolName,
      SPO_POOL_NAMESPACE: 'default',
      SPO_WORKER_NAME: name,
      SPO_HOST: '127.0.0.1',
      SPO_PORT: String(port),
      SPO_ADVERTISE_ENDPOINT: `127.0.0.1:${port}`,
      SPO_REDIS_NODES: redisTestEnv().endpoints.join(','),
      SPO_SESSION_MODE: mode,
      SPO_DRAIN_DEADLINE_SECONDS: '10',
      SPO_HEARTBEAT_SECONDS: '1',
      SPO_LOG_LEVEL: 'warn',
      SPO_ADMIN_TOKEN: adminToken,
    },
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`worker ${name} did not become ready (log: ${logDir}/${name}.log)`);
    await sleep(100);
  }
  return { name, port, child, exited };
}

async function stopWorker(w: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (w.child.exitCode === null && w.child.signalCode === null && w.child.pid !== undefined) {
    process.kill(w.child.pid, signal);
    const code = await Promise.race([w.exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      process.kill(w.child.pid, 'SIGKILL');
      return w.exited;
    }
    return code;
  }
  return w.child.exitCode;
}

const value = (r: unknown) => (r as { value: number }).value;

describe('worker processes on the Redis Cluster', function () {
  this.timeout(120_000);
  const workers: Running[] = [];
  let ports: number[] = [];
  let store: SessionStore;
  const endpoints = () => ports.map((p) => `127.0.0.1:${p}`);

  before(async () => {
    ports = [await freePort(), await freePort(), await freePort()];
    for (let i = 0; i < 3; i++) workers.push(await startWorker(`w${i + 1}`, ports[i] as number, 'Centralized'));
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
  });

  after(async () => {
    for (const w of workers) await stopWorker(w, 'SIGKILL');
    await store?.close();
  });

  async function restart(i: number, mode: SessionMode = 'Centralized'): Promise<void> {
    workers[i] = await startWorker(`w${i + 1}`, ports[i] as number, mode);
  }

  // A test that kills a worker restarts it; if it failed first, this does, so that one failure does not
  // fail the tests after it too.
  afterEach(async () => {
    for (let i = 0; i < workers.length; i++) {
      const w = workers[i] as Running;
      if (w.child.exitCode !== null || w.child.signalCode !== null) await restart(i);
    }
  });

  it('registers the three workers in the store', async () => {
    // Registration follows readiness by one heartbeat at most: give a loaded machine that long.
    const listWorkers = async () => (await store.listWorkers(pool)).map((w) => w.worker).sort();
    await waitFor('three registrations', async () => ((await listWorkers()).length === 3 ? true : undefined), 10_000, 100).catch(
      () => undefined,
    );
    expect(await listWorkers()).to.deep.equal(['w1', 'w2', 'w3']);
  });

  it('keeps one session consistent across random workers: strictly sequential, no lost increment', async () => {
    const client = new WorkerClient({ endpoints: endpoints() });
    const session = await client.createSession();
    const seen: number[][] = [];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        const mine: number[] = [];
        for (let i = 0; i < 40; i++) mine.push(value((await client.execute(session.id, 'incr', { key: 'n' })).result));
        seen.push(mine);
      }),
    );
    for (const mine of seen) for (let i = 1; i < mine.length; i++) expect(mine[i]).to.be.greaterThan(mine[i - 1] as number);
    const all = seen.flat().sort((a, b) => a - b);
    expect(all).to.deep.equal(Array.from({ length: 240 }, (_, i) => i + 1));
    const final = await client.getSession(session.id);
    expect(final.data).to.deep.equal({ vars: { n: 240 } });
    expect(final.version).to.equal(241);
  });

  it('answers bad input with 4xx and a reason', async () => {
    const base = `http://${endpoints()[0]}`;
    const malformed = await fetch(`${base}/v1/sessions`, {
      method: 'POST',
      body: '{nope',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).to.equal(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).to.equal('INVALID_JSON');
    const big = await fetch(`${base}/v1/sessions`, {
      method: 'POST',
      body: JSON.stringify({ data: { x: 'y'.repeat(2 * 1024 * 1024) } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(big.status).to.equal(413);
    const unknown = await fetch(`${base}/v1/sessions/${'A'.repeat(22)}`);
    expect(unknown.status).to.equal(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).to.equal('SESSION_NOT_FOUND');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).to.match(/spo_worker_requests_total\{[^}]*status="413"/);
  });

  it('refuses admin calls without the token (401) or with a wrong one (403) and changes nothing', async () => {
    const url = `http://${endpoints()[0]}/admin/mode`;
    const body = JSON.stringify({ mode: 'Dual' });
    const missing = await fetch(url, { method: 'POST', body });
    expect(missing.status).to.equal(401);
    expect(missing.headers.get('www-authenticate')).to.match(/^Bearer/);
    expect(((await missing.json()) as { error: { code: string } }).error.code).to.equal('UNAUTHORIZED');
    const wrong = await fetch(url, { method: 'POST', body, headers: { authorization: `Bearer ${'0'.repeat(64)}` } });
    expect(wrong.status).to.equal(403);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).to.equal('FORBIDDEN');
    const state = await fetch(url, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(state.status).to.equal(200);
    expect(((await state.json()) as { mode: string }).mode).to.equal('Centralized');
  });

  it('refuses work on a session being moved with 409 SESSION_MOVING and Retry-After', async () => {
    const client = new WorkerClient({ endpoints: endpoints(), maxAttempts: 1 });
    const session = await client.createSession();
    await store.setMoving(pool, [session.id], 'mig-test');
    const r = await fetch(`http://${endpoints()[1]}/v1/sessions/${session.id}/execute`, {
      method: 'POST',
      body: JSON.stringify({ handler: 'incr', args: { key: 'n' } }),
    });
    expect(r.status).to.equal(409);
    expect(r.headers.get('retry-after')).to.equal('1');
    expect(((await r.json()) as { error: { code: string } }).error.code).to.equal('SESSION_MOVING');
    await store.setMoving(pool, [session.id], null);
    expect(value((await client.execute(session.id, 'incr', { key: 'n' })).result)).to.equal(1);
  });

  it('runs concurrent anonymous commands in separate sessions and leaves none behind', async () => {
    const client = new WorkerClient({ endpoints: endpoints() });
    const before = await store.count(pool);
    const results = await Promise.all(Array.from({ length: 60 }, () => client.executeAnonymous('incr', { key: 'n' })));
    expect(results.map(value)).to.deep.equal(Array(60).fill(1));
    expect(await store.count(pool)).to.equal(before);
  });

  it('loses no acknowledged write when a worker is SIGKILLed mid-run', async () => {
    const client = new WorkerClient({ endpoints: endpoints(), maxAttempts: 12 });
    const session = await client.createSession();
    const acked: number[] = [];
    let unknown = 0;
    let stop = false;
    const loops = Array.from({ length: 6 }, async () => {
      while (!stop) {
        try {
          acked.push(value((await client.execute(session.id, 'incr', { key: 'n' })).result));
        } catch (error) {
          if (error instanceof WorkerApiError && error.status === 0) unknown++;
          else throw error;
        }
      }
    });
    await sleep(700);
    const killed = workers[2] as Running;
    process.kill(killed.child.pid as number, 'SIGKILL');
    await killed.exited;
    await sleep(700);
    stop = true;
    await Promise.all(loops);
    const final = value((await client.execute(session.id, 'get', { key: 'n' })).result);
    expect(acked.length).to.be.greaterThan(20);
    expect(new Set(acked).size).to.equal(acked.length);
    expect(Math.max(...acked)).to.be.at.most(final);
    expect(final).to.be.within(acked.length, acked.length + unknown);
    await restart(2);
  });

  it('drains on SIGTERM: in-flight requests complete, new ones are refused, exit code 0', async () => {
    const w1 = workers[0] as Running;
    const direct = new WorkerClient({ endpoints: [endpoints()[0] as string], maxAttempts: 1 });
    const session = await direct.createSession();
    // One session's requests run one at a time (its activation's queue): eight sessions, one request each, run together.
    const sessions = [session, ...(await Promise.all(Array.from({ length: 7 }, () => direct.createSession())))];
    const inFlight = sessions.map((s) => direct.execute(s.id, 'sleep', { ms: 1500 }));
    await sleep(300);
    process.kill(w1.child.pid as number, 'SIGTERM');
    await sleep(200);
    const refused = await direct.execute(session.id, 'incr', { key: 'n' }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(WorkerApiError);
    expect(['WORKER_DRAINING', 'ECONNREFUSED']).to.include((refused as WorkerApiError).code);
    // The refusal also closes its connection, so that no client keeps reusing one into the shutdown.
    const raw = await fetch(`http://${endpoints()[0]}/v1/sessions/${session.id}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'incr', args: { key: 'n' } }),
    });
    expect(raw.status).to.equal(503);
    expect(raw.headers.get('connection')).to.equal('close');
    const done = await Promise.all(inFlight);
    expect(done.map((d) => d.result)).to.deep.equal(Array(8).fill({ slept: 1500 }));
    expect(await w1.exited).to.equal(0);
    expect((await store.listWorkers(pool)).map((w) => w.worker)).to.not.include('w1');
    // The session is served by the other workers.
    const others = new WorkerClient({ endpoints: endpoints().slice(1) });
    expect(value((await others.execute(session.id, 'incr', { key: 'n' })).result)).to.equal(1);
    await restart(0);
  });

  it('keeps every session through Centralized -> Dual -> WorkerLocal -> Dual -> Centralized under live traffic', async () => {
    // Random routing: the workers route each request to the session's holder (the client's routing is a hint).
    const client = new WorkerClient({ endpoints: endpoints() });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await client.createSession({ tag: i })).id);
    const expected = new Map(ids.map((id) => [id, 0]));
    let stop = false;
    const failures: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        for (const id of ids) {
          try {
            const r = await client.execute(id, 'incr', { key: 'n' });
            expected.set(id, value(r.result));
          } catch (error) {
            failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }
    })();
    const switchAll = async (mode: SessionMode) => {
      for (const e of endpoints()) {
        const r = await fetch(`http://${e}/admin/mode`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}` },
          body: JSON.stringify({ mode }),
        });
        expect(r.status, `switch ${e} to ${mode}: ${await r.clone().text()}`).to.equal(200);
      }
      await sleep(300);
      // Every session answers through every worker, without a client retry.
      for (const id of expected.keys())
        for (const e of endpoints()) {
          const r = await fetch(`http://${e}/v1/sessions/${id}`);
          expect(r.status, `${mode}: session ${id} through ${e}: ${await r.clone().text()}`).to.equal(200);
        }
    };
    await sleep(300);
    await switchAll('Dual');
    await switchAll('WorkerLocal');
    // Sessions created in the legacy mode must survive the way back too.
    for (let i = 0; i < 3; i++) {
      const id = (await client.createSession({ tag: `local-${i}` })).id;
      expected.set(id, 0);
      ids.push(id);
    }
    await sleep(300);
    await switchAll('Dual');
    await switchAll('Centralized');
    stop = true;
    await traffic;
    expect(failures).to.deep.equal([]);
    for (const [id, n] of expected) {
      const s = await client.getSession(id);
      const vars = (s.data as { vars?: { n?: number } }).vars;
      expect(vars?.n ?? 0, `session ${id}`).to.equal(n);
    }
  });
});
