// Degraded mode in the activation model, through a real worker process on the real Redis Cluster:
// the master holding a session's slot and its replica are frozen (SIGSTOP: a partition; no failover
// can bring the slot back), and the worker holding the session's activation keeps answering reads of it from the
// state it last wrote, while every write is refused with a retryable 503 before the handler runs.
// Once the nodes are back, writes resume from the last acknowledged state: nothing lost, nothing
// run twice. Policy and reasons: docs/activation.md "Degraded mode".
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { pauseRedisNode, redisRoles, waitForFullStrength } from '../../e2e/harness/redis-cluster.ts';
import { waitFor } from '../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore, poolIdentity } from '../store/index.ts';
import { keySlot } from '../store/keys.ts';
import { masterIndexOf } from '../store/test-helpers.int.ts';
import type { RedisSessionStore } from '../store/index.ts';
import { startWorkerProcess, WORKER_TEST_NAMESPACE, type WorkerProcess } from './testing/worker-process.ts';

const poolName = `degraded-${randomBytes(3).toString('hex')}`;
const pool = poolIdentity(WORKER_TEST_NAMESPACE, poolName);

async function call(base: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const json = (await response.json().catch(() => ({}))) as {
    session?: { version: number; data: { vars?: { n?: number } } };
    result?: { value?: number };
    error?: { code?: string };
  };
  return { status: response.status, headers: response.headers, json };
}

describe('worker: degraded mode (store unreachable) in the activation model', function () {
  this.timeout(120_000);
  const { state } = redisTestEnv();
  let worker: WorkerProcess | undefined;
  let store: RedisSessionStore | undefined;
  const stopped: number[] = [];

  after(async () => {
    for (const index of stopped.splice(0)) pauseRedisNode(state, index, false);
    await waitForFullStrength(state);
    await worker?.stop();
    await store?.close();
  });

  it('answers reads from the live activation, refuses writes with a retryable 503 without running the handler, and resumes', async () => {
    worker = await startWorkerProcess({
      pool: poolName,
      name: 'dg-1',
    });
    const created = await call(worker.base, 'POST', '/v1/sessions', { data: {} });
    expect(created.status).to.equal(201);
    const id = (created.json.session as unknown as { id: string }).id;
    for (let n = 1; n <= 3; n++) {
      const r = await call(worker.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
      expect(r.status, JSON.stringify(r.json)).to.equal(200);
      expect(r.json.result?.value).to.equal(n);
    }

    // Freeze the session's master and its replica: the slot has no node left to answer it.
    store = createSessionStore({ nodes: redisTestEnv().endpoints, degraded: { enabled: false } });
    expect((await store.get(id, { pool }))?.version).to.equal(4); // also loads the slot map
    const master = masterIndexOf(store, state.nodes, keySlot(store.core.keys.session(pool, id)));
    const roles = await redisRoles(state);
    const masterId = roles.find((r) => r.index === master)?.nodeId;
    const replica = roles.find((r) => r.role === 'replica' && r.masterId === masterId)?.index;
    expect(replica, 'the master has a replica').to.be.a('number');
    for (const index of [replica as number, master]) {
      stopped.push(index);
      pauseRedisNode(state, index, true);
    }

    // The worker notices at its next heartbeat (it turns unready: degraded mode is not allowed by default).
    await waitFor(
      'the worker to find the store unreachable',
      async () => ((await worker!.readiness()).status === 503 ? true : undefined),
      60_000,
      250,
    );
    const read = await call(worker.base, 'GET', `/v1/sessions/${id}`);
    expect(read.status, JSON.stringify(read.json)).to.equal(200);
    expect(read.headers.get('x-spo-served-from')).to.equal('activation');
    expect(read.json.session?.version).to.equal(4);
    expect(read.json.session?.data.vars?.n).to.equal(3);

    const write = await call(worker.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    expect(write.status).to.equal(503);
    expect(write.json.error?.code).to.equal('STORE_UNAVAILABLE');
    expect(Number(write.headers.get('retry-after'))).to.be.greaterThan(0);
    const metrics = await (await fetch(`${worker.base}/metrics`)).text();
    expect(metrics).to.match(/spo_worker_degraded_reads_total 1\b/);

    // A session this worker holds no activation of is not served from anywhere: 503, not a guess.
    const unknown = await call(worker.base, 'GET', `/v1/sessions/${'A'.repeat(22)}`);
    expect([503, 404]).to.include(unknown.status);

    for (const index of stopped.splice(0)) pauseRedisNode(state, index, false);
    await waitForFullStrength(state);
    // The refused write ran nothing and wrote nothing: the next increment is the fourth.
    let resumed = await call(worker.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    for (let attempt = 0; resumed.status !== 200 && attempt < 50; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      resumed = await call(worker.base, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } });
    }
    expect(resumed.status, JSON.stringify(resumed.json)).to.equal(200);
    expect(resumed.json.result?.value).to.equal(4);
    const stored = await store.get(id, { pool });
    expect(stored?.data).to.deep.equal({ vars: { n: 4 } });
  });
});
