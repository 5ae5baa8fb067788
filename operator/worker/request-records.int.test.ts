// Idempotency-Keys of creates and anonymous executes (docs/activation.md "Idempotency-Key"), with two
// real worker processes on the real Redis Cluster: the key's record is the pool's, so a retry through
// either worker is answered from it, a retry while the first still runs is told so, and the handler
// runs once. Runs are counted by the workers' own spo_worker_sessions_executed_total.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore } from '../store/index.ts';
import type { SessionStore } from '../store/types.ts';
import { WORKER_TEST_NAMESPACE, postJson as post, startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';

const poolName = `keyed-int-${Date.now().toString(36)}`;
const pool = `${WORKER_TEST_NAMESPACE}/${poolName}`;

const newKey = () => ({ 'idempotency-key': `k-${randomBytes(8).toString('hex')}` });
const errorCodeOf = (body: Record<string, unknown>) => (body.error as { code?: string } | undefined)?.code;

describe('Idempotency-Keys of creates and anonymous executes: worker processes on the Redis Cluster', function () {
  this.timeout(60_000);
  let w1: WorkerProcess;
  let w2: WorkerProcess;
  let store: SessionStore;

  /** How many times both workers ran `handler` (every result), from their /metrics. */
  async function runs(handler: string): Promise<number> {
    let total = 0;
    for (const w of [w1, w2]) {
      const text = await (await fetch(`${w.base}/metrics`)).text();
      for (const line of text.split('\n')) {
        if (line.startsWith('spo_worker_sessions_executed_total{') && line.includes(`handler="${handler}"`))
          total += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return total;
  }

  before(async () => {
    [w1, w2] = await Promise.all([startWorkerProcess({ pool: poolName, name: 'k1' }), startWorkerProcess({ pool: poolName, name: 'k2' })]);
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
  });

  after(async () => {
    await Promise.all([w1?.stop(), w2?.stop()]);
    await store?.close();
  });

  it('runs a keyed anonymous execute once: a retry through the other worker gets the recorded reply', async () => {
    const key = newKey();
    const request = { handler: 'incr', args: { key: 'n' }, data: { vars: { n: 41 } } };
    const before = await runs('incr');
    const first = await post(w1.base, '/v1/execute', request, key);
    const retry = await post(w2.base, '/v1/execute', request, key);
    expect(first.status).to.equal(200);
    expect(first.body.result).to.deep.equal({ key: 'n', value: 42 });
    expect(first.headers.get('idempotent-replayed')).to.equal(null);
    expect(retry.status).to.equal(200);
    expect(retry.body).to.deep.equal(first.body);
    expect(retry.headers.get('idempotent-replayed')).to.equal('true');
    expect((await runs('incr')) - before).to.equal(1);
    // The same key with another request: refused, nothing run.
    const other = await post(w2.base, '/v1/execute', { ...request, data: { vars: { n: 1 } } }, key);
    expect(other.status).to.equal(422);
    expect(errorCodeOf(other.body)).to.equal('IDEMPOTENCY_KEY_REUSED');
    expect((await runs('incr')) - before).to.equal(1);
    // Without a key every request runs.
    await post(w1.base, '/v1/execute', request);
    await post(w1.base, '/v1/execute', request);
    expect((await runs('incr')) - before).to.equal(3);
  });

  it('tells a retry that arrives while the first request runs to retry (409, Retry-After), then answers it from the record', async () => {
    const key = newKey();
    const request = { handler: 'sleep', args: { ms: 1500 } };
    const before = await runs('sleep');
    const first = post(w1.base, '/v1/execute', request, key);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await post(w2.base, '/v1/execute', request, key);
    expect(during.status).to.equal(409);
    expect(errorCodeOf(during.body)).to.equal('IDEMPOTENCY_KEY_IN_USE');
    expect(during.headers.get('retry-after')).to.equal('1');
    expect((await first).status).to.equal(200);
    const after = await post(w2.base, '/v1/execute', request, key);
    expect(after.status).to.equal(200);
    expect(after.body.result).to.deep.equal({ slept: 1500 });
    expect(after.headers.get('idempotent-replayed')).to.equal('true');
    expect((await runs('sleep')) - before).to.equal(1);
  });

  it('does not record a failed request: its retry runs again', async () => {
    const key = newKey();
    const request = { handler: 'incr', args: { key: 'n' }, data: { vars: { n: 'not a number' } } };
    const failed = await post(w1.base, '/v1/execute', request, key);
    expect(failed.status).to.equal(422);
    expect(errorCodeOf(failed.body)).to.equal('HANDLER_ERROR');
    const retry = await post(w2.base, '/v1/execute', request, key);
    expect(retry.status).to.equal(422);
    expect(retry.headers.get('idempotent-replayed')).to.equal(null);
  });

  it('makes one session for a keyed create and its retries through either worker', async () => {
    const key = newKey();
    const before = await store.count(pool);
    const first = await post(w1.base, '/v1/sessions', { data: { user: 'a' } }, key);
    const retry = await post(w2.base, '/v1/sessions', { data: { user: 'a' } }, key);
    const again = await post(w1.base, '/v1/sessions', { data: { user: 'a' } }, key);
    expect(first.status).to.equal(201);
    const id = (first.body.session as { id: string }).id;
    for (const r of [retry, again]) {
      expect(r.status).to.equal(201);
      expect((r.body.session as { id: string }).id).to.equal(id);
      expect(r.headers.get('idempotent-replayed')).to.equal('true');
    }
    expect(await store.count(pool)).to.equal(before + 1);
    expect((await store.get(id, { pool, touch: false }))?.data).to.deep.equal({ user: 'a' });
    // An invalid key: 400, nothing created.
    const bad = await post(w2.base, '/v1/sessions', { data: {} }, { 'idempotency-key': 'a b' });
    expect(bad.status).to.equal(400);
    expect(await store.count(pool)).to.equal(before + 1);
    // Without a key, two creates are two sessions.
    await post(w1.base, '/v1/sessions', { data: {} });
    await post(w1.base, '/v1/sessions', { data: {} });
    expect(await store.count(pool)).to.equal(before + 3);
  });
});
