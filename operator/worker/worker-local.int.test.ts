// WorkerLocal as activations without the store (docs/activation.md "WorkerLocal"), with real worker
// processes on the real Redis Cluster: a request reaching a worker that does not hold the session is
// forwarded in one hop to the one that does (the client's routing is only a hint); a session a stopped
// worker wrote to the store is taken into memory by the worker that gets its next request, once.
import { expect } from 'chai';
import { waitFor } from '../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore } from '../store/index.ts';
import type { SessionStore } from '../store/types.ts';
import { WORKER_TEST_NAMESPACE, startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';

const poolName = `wl-int-${Date.now().toString(36)}`;
const pool = `${WORKER_TEST_NAMESPACE}/${poolName}`;

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}

const counter = (body: Record<string, unknown>) => (body.session as { data: { vars?: { n?: number } } }).data.vars?.n ?? 0;

describe('WorkerLocal: sessions in worker memory, routed by session (worker processes)', function () {
  this.timeout(120_000);
  const env = { SPO_SESSION_MODE: 'WorkerLocal', SPO_HEARTBEAT_SECONDS: '1', SPO_DRAIN_DEADLINE_SECONDS: '5' };
  const workers: WorkerProcess[] = [];
  let store: SessionStore;

  before(async () => {
    workers.push(...(await Promise.all(['w1', 'w2', 'w3'].map((name) => startWorkerProcess({ pool: poolName, name, env })))));
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
    await waitFor('three registrations', async () => ((await store.listWorkers(pool)).length === 3 ? true : undefined), 10_000, 100);
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await store?.close();
  });

  it('forwards a request for a session another worker holds in one hop; the store is not used', async () => {
    const [w1, w2] = workers as [WorkerProcess, WorkerProcess];
    const created = await call(w1.base, 'POST', '/v1/sessions', { data: {} });
    const id = (created.body.session as { id: string }).id;
    for (let i = 1; i <= 3; i++) {
      const r = await call(w2.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(r.headers.get('x-spo-worker')).to.equal('w2');
      expect(r.headers.get('x-spo-forwarded-to')).to.equal('w1');
      expect((r.body.result as { value: number }).value).to.equal(i);
    }
    const read = await call(w2.base, 'GET', `/v1/sessions/${id}`);
    expect(read.status).to.equal(200);
    expect(read.headers.get('x-spo-forwarded-to')).to.equal('w1');
    expect(counter(read.body)).to.equal(3);
    // The holder probe: w1 holds it, w2 does not; the store has no copy.
    expect((await call(w1.base, 'GET', `/v1/sessions/${id}/holder`)).body).to.deep.equal({ held: true, worker: 'w1' });
    expect((await call(w2.base, 'GET', `/v1/sessions/${id}/holder`)).body).to.deep.equal({ held: false, worker: 'w2' });
    expect(await store.get(id, { pool, touch: false })).to.equal(null);
    // An unknown session, after every worker was asked: 404 SESSION_NOT_FOUND.
    const unknown = await call(w2.base, 'GET', `/v1/sessions/${'A'.repeat(22)}`);
    expect([unknown.status, (unknown.body.error as { code: string }).code]).to.deep.equal([404, 'SESSION_NOT_FOUND']);
    // Deleting through a non-holder deletes at the holder.
    expect((await call(w2.base, 'DELETE', `/v1/sessions/${id}`)).status).to.equal(200);
    expect((await call(w1.base, 'GET', `/v1/sessions/${id}/holder`)).body).to.deep.equal({ held: false, worker: 'w1' });
  });

  it('a retry with the same Idempotency-Key gets the recorded reply, through the holder or a forwarder, and the handler does not run again', async () => {
    const [w1, w2] = workers as [WorkerProcess, WorkerProcess];
    const id = ((await call(w1.base, 'POST', '/v1/sessions', { data: {} })).body.session as { id: string }).id;
    const incr = (base: string, key: string) =>
      call(base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, { 'idempotency-key': key });
    const first = await incr(w2.base, 'key-1');
    expect([first.status, first.headers.get('idempotent-replayed')]).to.deep.equal([200, null]);
    expect(first.body).to.include({ sessionId: id, version: 2 });
    for (const base of [w1.base, w2.base]) {
      const retry = await incr(base, 'key-1');
      expect([retry.status, retry.headers.get('idempotent-replayed')], base).to.deep.equal([200, 'true']);
      expect(retry.body).to.deep.equal(first.body);
    }
    const second = await incr(w1.base, 'key-2');
    expect((second.body.result as { value: number }).value).to.equal(2);
    // A key the contract refuses: 400 before anything runs.
    const bad = await incr(w2.base, 'has space');
    expect([bad.status, (bad.body.error as { code: string }).code]).to.deep.equal([400, 'INVALID_REQUEST']);
    expect(counter((await call(w2.base, 'GET', `/v1/sessions/${id}`)).body), 'the handler ran once per key').to.equal(2);
    expect((await call(w2.base, 'DELETE', `/v1/sessions/${id}`)).status).to.equal(200);
  });

  it('a stopped worker writes its sessions to the store; the worker that gets the next request takes each into memory, once', async () => {
    const [w1, w2, w3] = workers as [WorkerProcess, WorkerProcess, WorkerProcess];
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = ((await call(w3.base, 'POST', '/v1/sessions', { data: {} })).body.session as { id: string }).id;
      await call(w3.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
      ids.push(id);
    }
    await w3.stop();
    workers.pop();
    for (const id of ids) expect((await store.get(id, { pool, touch: false }))?.owner, 'written by the drain').to.equal('w3');
    // Each session's next request, through w1 or w2 in turn: taken into one worker's memory, then forwarded there.
    for (const [i, id] of ids.entries()) {
      const via = i % 2 === 0 ? w1 : w2;
      const r = await call(via.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect((r.body.result as { value: number }).value).to.equal(2);
      expect(await store.get(id, { pool, touch: false }), 'store copy deleted once in memory').to.equal(null);
      const other = via === w1 ? w2 : w1;
      const read = await call(other.base, 'GET', `/v1/sessions/${id}`);
      expect(read.headers.get('x-spo-forwarded-to')).to.equal(via === w1 ? 'w1' : 'w2');
      expect(counter(read.body)).to.equal(2);
    }
  });
});
