// Single activation with real worker processes on the real Redis Cluster (docs/activation.md):
// forwarding in one hop, one request at a time per session, Idempotency-Key replies, idle
// release of the lease, and POST /admin/handover while requests run on the session.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { waitFor } from '../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore } from '../store/index.ts';
import type { SessionStore } from '../store/types.ts';
import { WorkerClient } from './client.ts';
import { WORKER_TEST_NAMESPACE, postJson as post, startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';

const adminToken = randomBytes(32).toString('hex');
const suffix = Date.now().toString(36);
const poolName = `act-int-${suffix}`;
const pool = `${WORKER_TEST_NAMESPACE}/${poolName}`;
const idlePoolName = `act-idle-${suffix}`;
const idlePool = `${WORKER_TEST_NAMESPACE}/${idlePoolName}`;

const value = (r: unknown) => (r as { value: number }).value;

describe('single activation: worker processes on the Redis Cluster', function () {
  this.timeout(120_000);
  const env = { SPO_ADMIN_TOKEN: adminToken, SPO_HEARTBEAT_SECONDS: '1' };
  let w1: WorkerProcess;
  let w2: WorkerProcess;
  let store: SessionStore;
  const byName = () =>
    new Map([
      ['w1', w1],
      ['w2', w2],
    ]);

  before(async () => {
    [w1, w2] = await Promise.all([
      startWorkerProcess({ pool: poolName, name: 'w1', env }),
      startWorkerProcess({ pool: poolName, name: 'w2', env }),
    ]);
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
    // Both registrations are visible (a heartbeat at most after readiness).
    await waitFor('two registrations', async () => ((await store.listWorkers(pool)).length === 2 ? true : undefined), 10_000, 100);
  });

  after(async () => {
    await Promise.all([w1?.stop(), w2?.stop()]);
    await store?.close();
  });

  it("forwards a request for another worker's activation in one hop; the owner index names the activation only", async () => {
    const created = await post(w1.base, '/v1/sessions', { data: {} });
    const id = (created.body.session as { id: string }).id;
    const r = await post(w2.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    expect(r.status).to.equal(200);
    expect(r.headers.get('x-spo-worker')).to.equal('w2');
    expect(r.headers.get('x-spo-forwarded-to')).to.equal('w1');
    expect(value(r.body.result)).to.equal(1);
    expect(await store.listByOwner(pool, 'w1')).to.include(id);
    expect(await store.listByOwner(pool, 'w2')).to.not.include(id);
    // A forwarded request is never forwarded again: w1 holds it, so w1 runs it.
    const again = await post(w1.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, { 'x-spo-forwarded': 'w2' });
    expect(again.headers.get('x-spo-forwarded-to')).to.equal(null);
    expect(value(again.body.result)).to.equal(2);
  });

  it('runs concurrent requests to one session through both workers one at a time: each increment exactly once', async () => {
    const client = new WorkerClient({ endpoints: [w1.base, w2.base], baseDelayMs: 5 });
    const ids = await Promise.all(Array.from({ length: 4 }, async () => (await client.createSession()).id));
    const seen = new Map<string, number[]>(ids.map((id) => [id, []]));
    await Promise.all(
      ids.flatMap((id) =>
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 15; i++) seen.get(id)!.push(value((await client.execute(id, 'incr', { key: 'n' })).result));
        }),
      ),
    );
    for (const [id, values] of seen) {
      expect(
        [...values].sort((a, b) => a - b),
        id,
      ).to.deep.equal(Array.from({ length: 60 }, (_, i) => i + 1));
      expect((await store.get(id, { pool, touch: false }))?.data).to.deep.equal({ vars: { n: 60 } });
    }
  });

  it('answers a retry with the same Idempotency-Key from the record, through any worker, without running the handler', async () => {
    const created = await post(w1.base, '/v1/sessions', { data: {} });
    const id = (created.body.session as { id: string }).id;
    const key = { 'idempotency-key': `k-${randomBytes(8).toString('hex')}` };
    const first = await post(w1.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, key);
    const retry = await post(w2.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, key);
    const retryOwner = await post(w1.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, key);
    expect(first.status).to.equal(200);
    expect(retry.body).to.deep.equal(first.body);
    expect(retryOwner.body).to.deep.equal(first.body);
    expect(retryOwner.headers.get('idempotent-replayed')).to.equal('true');
    const next = await post(w2.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    expect(value(next.body.result)).to.equal(2);
    const bad = await post(w1.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }, { 'idempotency-key': 'a b' });
    expect(bad.status).to.equal(400);
    expect((await store.get(id, { pool, touch: false }))?.version).to.equal(3);
  });

  it('POST /admin/handover: 401 without the token, 400 on a bad body, idle for a session it does not hold', async () => {
    const created = await post(w1.base, '/v1/sessions', { data: {} });
    const id = (created.body.session as { id: string }).id;
    const body = { migration: 'default/m/1', deadlineMs: 5000, moves: [{ sessionId: id, target: 'w2' }] };
    expect((await post(w1.base, '/admin/handover', body)).status).to.equal(401);
    const auth = { authorization: `Bearer ${adminToken}` };
    for (const bad of [{}, { ...body, moves: [] }, { ...body, moves: [{ sessionId: 'x', target: 'w2' }] }, { ...body, extra: 1 }]) {
      expect((await post(w1.base, '/admin/handover', bad, auth)).status).to.equal(400);
    }
    expect((await store.get(id, { pool, touch: false }))?.owner).to.equal('w1'); // nothing moved
    const notHeld = await post(w2.base, '/admin/handover', { ...body, moves: [{ sessionId: id, target: 'w1' }] }, auth);
    expect(notHeld.body.results).to.deep.equal([{ sessionId: id, outcome: 'idle' }]);
    const moved = await post(w1.base, '/admin/handover', body, auth);
    const [result] = moved.body.results as { outcome: string; epoch: number }[];
    expect(result?.outcome).to.equal('moved');
    const after = await store.get(id, { pool, touch: false });
    expect([after?.owner, after?.epoch]).to.deep.equal(['w2', result?.epoch]);
    // Idempotent: the same move again answers idle (the source no longer holds it).
    expect(((await post(w1.base, '/admin/handover', body, auth)).body.results as { outcome: string }[])[0]?.outcome).to.equal('idle');
    // The target adopts it on the next request, at the epoch the move gave.
    const r = await post(w1.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    expect(r.headers.get('x-spo-forwarded-to')).to.equal('w2');
    expect((await store.get(id, { pool, touch: false }))?.epoch).to.equal(result?.epoch);
    // A lease handed to a worker that no request has adopted since goes on to the target as a lease
    // (not released, where any worker could claim it): moved to w1 by the store, then w1 is asked.
    const current = (await store.get(id, { pool, touch: false }))!;
    const [toW1] = await store.moveOwners(pool, [{ sessionId: id, fromOwner: 'w2', fromEpoch: current.epoch, toOwner: 'w1' }]);
    expect(toW1?.status).to.equal('moved');
    const handed = await post(w1.base, '/admin/handover', body, auth);
    const [onward] = handed.body.results as { outcome: string; epoch: number }[];
    expect(onward?.outcome).to.equal('moved');
    const last = await store.get(id, { pool, touch: false });
    expect([last?.owner, last?.epoch]).to.deep.equal(['w2', onward?.epoch]);
  });

  it('hands over a session while requests run on it through both workers: no request fails, none runs twice', async () => {
    const client = new WorkerClient({ endpoints: [w1.base, w2.base], baseDelayMs: 5, maxAttempts: 20 });
    const id = (await client.createSession()).id;
    const values: number[] = [];
    let running = true;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 40; i++) values.push(value((await client.execute(id, 'incr', { key: 'n' })).result));
      }),
    ).finally(() => (running = false));
    const outcomes: string[] = [];
    for (let round = 0; round < 8 && running; round++) {
      const owner = (await store.get(id, { pool, touch: false }))?.owner;
      const source = owner ? byName().get(owner) : undefined;
      if (!source) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const target = owner === 'w1' ? 'w2' : 'w1';
      const r = await post(
        source.base,
        '/admin/handover',
        { migration: `default/m/${round}`, deadlineMs: 5000, moves: [{ sessionId: id, target }] },
        { authorization: `Bearer ${adminToken}` },
      );
      expect(r.status).to.equal(200);
      outcomes.push((r.body.results as { outcome: string }[])[0]!.outcome);
    }
    await load;
    expect(outcomes).to.include('moved');
    expect(outcomes.filter((o) => o === 'failed')).to.deep.equal([]);
    expect([...values].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 160 }, (_, i) => i + 1));
    expect((await store.get(id, { pool, touch: false }))?.data).to.deep.equal({ vars: { n: 160 } });
  });
});

describe('single activation: idle release', function () {
  this.timeout(120_000);
  let w: WorkerProcess;
  let store: SessionStore;

  before(async () => {
    w = await startWorkerProcess({ pool: idlePoolName, name: 'idle-1', env: { SPO_IDLE_SECONDS: '1', SPO_HEARTBEAT_SECONDS: '1' } });
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
  });

  after(async () => {
    await w?.stop();
    await store?.close();
  });

  it('releases the lease of an idle activation (the owner index drops it) and claims it again on the next request', async () => {
    const created = await post(w.base, '/v1/sessions', { data: {} });
    const id = (created.body.session as { id: string }).id;
    const before = await store.get(id, { pool: idlePool, touch: false });
    expect(before?.owner).to.equal('idle-1');
    await waitFor(
      'the idle lease released',
      async () => ((await store.get(id, { pool: idlePool, touch: false }))?.owner === null ? true : undefined),
      20_000,
      200,
    );
    expect(await store.listByOwner(idlePool, 'idle-1')).to.not.include(id);
    const r = await post(w.base, `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    expect(r.status).to.equal(200);
    const after = await store.get(id, { pool: idlePool, touch: false });
    expect(after?.owner).to.equal('idle-1');
    expect(after?.epoch).to.be.greaterThan(before!.epoch + 1); // released (+1), claimed (+1)
    expect(await store.listByOwner(idlePool, 'idle-1')).to.include(id);
  });
});
