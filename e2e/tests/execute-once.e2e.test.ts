// Execute once, end to end (docs/activation.md): a pool whose handler container counts its own
// invocations per session outside the store (e2e/handlers/counting_handler.py), concurrent requests
// on the same sessions through every worker, each retried with its Idempotency-Key until answered,
// handovers of the sessions' activations between workers and the deletion of a worker pod during the
// run: invocations equal acknowledged requests exactly, and every acknowledged write is in the store.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPool, poolEndpoints } from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';
import { log } from './support/assertions.ts';
import { readInvocations } from './support/invocations.ts';

const SESSIONS = 6;
const PER_LANE = 12;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('execute once: Idempotency-Key retries through every worker, with handovers and a worker deletion during the run', function () {
  this.timeout(180_000);
  const state = migrationSuite();
  const dir = mkdtempSync(path.join(tmpdir(), 'spo-execute-once-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs each acknowledged request exactly once: handler invocations per session = acknowledged requests', async () => {
    const { env } = state;
    const countFile = path.join(dir, 'invocations.log');
    const pool = (state.pool = await createPool(env, {
      replicas: 3,
      prefix: 'once',
      spec: { handler: { image: 'spo-counting-handler:e2e', timeoutSeconds: 10, env: [{ name: 'SPO_COUNT_FILE', value: countFile }] } },
    }));
    const secret = await env.core.readNamespacedSecret({ name: `${pool.name}-admin-token`, namespace: pool.namespace });
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');
    let endpoints: string[] = [];
    for (let i = 0; i < 120 && endpoints.length < 3; i++) {
      endpoints = await poolEndpoints(env, pool);
      if (endpoints.length < 3) await sleep(250);
    }
    expect(endpoints).to.have.length(3);
    for (const e of endpoints) for (let i = 0; i < 240 && (await fetch(`http://${e}/readyz`)).status !== 200; i++) await sleep(250); // handlers ready

    const ids: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const r = await fetch(`http://${endpoints[i % 3]}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"data":{}}',
      });
      expect(r.status).to.equal(201);
      ids.push(((await r.json()) as { session: { id: string } }).session.id);
    }

    const acked = new Map<string, number>(ids.map((id) => [id, 0]));
    const retries = { answers: 0, broken: 0 };
    /** One request, resent with the same key until it is answered 200 (bounded). */
    const put = async (id: string, lane: number, i: number) => {
      const key = randomUUID();
      for (let attempt = 0; attempt < 60; attempt++) {
        const endpoint = endpoints[(lane + attempt) % endpoints.length];
        try {
          const r = await fetch(`http://${endpoint}/v1/sessions/${id}/execute`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify({ handler: 'put', args: { key: `l${lane}`, value: i } }),
            signal: AbortSignal.timeout(20_000),
          });
          const text = await r.text();
          if (r.status === 200) return void acked.set(id, acked.get(id)! + 1);
          if (r.status !== 409 && r.status !== 503) throw new Error(`execute answered ${r.status}: ${text}`);
          retries.answers++;
        } catch (error) {
          if (error instanceof Error && error.message.startsWith('execute answered')) throw error;
          retries.broken++; // unknown outcome: the same key makes the resend safe
        }
        await sleep(20 + Math.random() * 80);
      }
      throw new Error(`request ${key} on ${id} not answered after 60 attempts`);
    };

    let running = true;
    const load = Promise.all(
      ids.flatMap((id) =>
        [0, 1, 2].map(async (lane) => {
          for (let i = 0; i < PER_LANE; i++) await put(id, lane, i);
        }),
      ),
    ).finally(() => (running = false));

    // Handovers during the run: each live activation to the next worker, through the source's /admin/handover.
    const workerOf = new Map<string, string>();
    for (const w of env.kubelet.workers.values()) if (endpoints.includes(w.endpoint)) workerOf.set(w.pod, w.endpoint);
    const names = [...workerOf.keys()].sort();
    const outcomes: string[] = [];
    let deleted: string | undefined;
    for (let round = 0; round < 6 && running; round++) {
      await sleep(300);
      if (round === 2) {
        // A worker pod deleted mid-run: it drains (refusing new requests, finishing its running ones,
        // releasing its leases) while the Deployment replaces it.
        deleted = names[0]!;
        await env.core.deleteNamespacedPod({ name: deleted, namespace: pool.namespace });
        log(`deleted worker pod ${deleted}`);
      }
      const bySource = new Map<string, { sessionId: string; target: string }[]>();
      for (const id of ids) {
        const owner = (await pool.store.get(id, { pool: pool.id, touch: false }))?.owner;
        if (!owner || !workerOf.has(owner)) continue;
        const target = names[(names.indexOf(owner) + 1) % names.length]!;
        bySource.set(owner, [...(bySource.get(owner) ?? []), { sessionId: id, target }]);
      }
      for (const [source, moves] of bySource) {
        if (source === deleted) continue;
        const live = moves.filter((m) => m.target !== deleted);
        if (live.length === 0) continue;
        const r = await fetch(`http://${workerOf.get(source)}/admin/handover`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ migration: `${pool.namespace}/${pool.name}/${round}`, deadlineMs: 5000, moves: live }),
        });
        expect(r.status).to.equal(200);
        for (const result of ((await r.json()) as { results: { outcome: string }[] }).results) outcomes.push(result.outcome);
      }
    }
    await load;

    const invocations = readInvocations(countFile).bySession;
    log(
      `acknowledged ${[...acked.values()].reduce((a, b) => a + b, 0)} requests; retried ${retries.answers} refusals and ${retries.broken} broken connections; handovers: ${outcomes.filter((o) => o === 'moved').length} moved, ${outcomes.filter((o) => o !== 'moved').length} other`,
    );
    expect(outcomes).to.include('moved');
    for (const id of ids) {
      expect(acked.get(id), id).to.equal(3 * PER_LANE);
      expect(invocations.get(id) ?? 0, `handler invocations of ${id}`).to.equal(acked.get(id));
      const record = await pool.store.get(id, { pool: pool.id, touch: false });
      // Every acknowledged write is there: each lane's last value, and one version per acknowledged request.
      expect(record?.data).to.deep.equal({ l0: PER_LANE - 1, l1: PER_LANE - 1, l2: PER_LANE - 1 });
      expect(record?.version).to.equal(1 + 3 * PER_LANE);
    }
  });
});
