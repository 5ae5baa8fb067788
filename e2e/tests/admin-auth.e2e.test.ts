// The worker's admin API through the operator and a real pool: the operator creates the pool's
// admin token Secret and the workers read it; an admin call without the token is refused with
// 401, with a wrong token with 403, and changes nothing; the operator's own calls succeed: a
// spec.sessionMode change is switched on the live workers with the token (each original worker
// reports the new mode before the rollout replaces it), and no session is lost. The token
// appears in no log of the run.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EventsV1Api, type V1Secret } from '@kubernetes/client-node';
import { WorkerClient } from '../../operator/worker/client.ts';
import { waitFor } from '../harness/processes.ts';
import { createPool, patchPoolSpec, poolEndpoints, waitForWorkers } from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';

interface ErrorBody {
  error: { code: string };
}

async function adminMode(endpoint: string, authorization?: string): Promise<{ status: number; mode?: string; code?: string }> {
  const response = await fetch(`http://${endpoint}/admin/mode`, {
    headers: authorization ? { authorization } : {},
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await response.json()) as Partial<ErrorBody> & { mode?: string };
  return { status: response.status, ...(body.mode ? { mode: body.mode } : {}), ...(body.error ? { code: body.error.code } : {}) };
}

describe('worker admin API: token from the operator (end to end)', function () {
  this.timeout(180_000);
  const suite = migrationSuite();

  it('refuses admin calls without the token (401) and with a wrong one (403); the operator switches the live workers with it', async () => {
    const { env } = suite;
    const pool = await createPool(env, { replicas: 2, prefix: 'admin' });
    suite.pool = pool;

    // The Secret: created by the operator, owned by the pool, immutable, 32 random bytes.
    const secret: V1Secret = await env.core.readNamespacedSecret({ name: `${pool.name}-admin-token`, namespace: pool.namespace });
    expect(secret.immutable).to.equal(true);
    expect(secret.metadata?.ownerReferences?.map((r) => [r.kind, r.name, r.controller])).to.deep.equal([['SessionPool', pool.name, true]]);
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');
    expect(token).to.match(/^[0-9a-f]{64}$/);

    const endpoints = await poolEndpoints(env, pool);
    expect(endpoints).to.have.length(2);
    for (const endpoint of endpoints) {
      const post = (headers: Record<string, string>) =>
        fetch(`http://${endpoint}/admin/mode`, { method: 'POST', headers, body: JSON.stringify({ mode: 'Dual' }) });
      const missing = await post({ 'content-type': 'application/json' });
      expect(missing.status, `${endpoint} without a token`).to.equal(401);
      expect(((await missing.json()) as ErrorBody).error.code).to.equal('UNAUTHORIZED');
      const wrong = await post({ 'content-type': 'application/json', authorization: `Bearer ${'f'.repeat(64)}` });
      expect(wrong.status, `${endpoint} with a wrong token`).to.equal(403);
      expect(((await wrong.json()) as ErrorBody).error.code).to.equal('FORBIDDEN');
      expect(await adminMode(endpoint, `Bearer ${token.slice(0, 32)}`)).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
      // Refused calls changed nothing; the pool's token opens the route.
      expect(await adminMode(endpoint, `Bearer ${token}`)).to.deep.equal({ status: 200, mode: 'Centralized' });
    }

    const client = new WorkerClient({ endpoints });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await client.createSession({ tag: i })).id);

    // The operator's own calls: spec.sessionMode Centralized -> Dual is switched on the live
    // workers (POST /admin/mode with the token) before the rollout replaces them.
    const seenDual = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching && seenDual.size < endpoints.length) {
        for (const endpoint of endpoints) {
          const answer = await adminMode(endpoint, `Bearer ${token}`).catch(() => undefined);
          if (answer?.mode === 'Dual') seenDual.add(endpoint);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    await patchPoolSpec(env, pool, { sessionMode: 'Dual' });
    const events = env.kc.makeApiClient(EventsV1Api);
    const switched = await waitFor(
      'SessionModeSwitched event of the pool',
      async () => {
        const list = await events.listNamespacedEvent({ namespace: pool.namespace });
        const mine = list.items.filter((e) => e.regarding?.name === pool.name && e.reason === 'SessionModeSwitched');
        return mine.length > 0 ? mine : undefined;
      },
      60_000,
      250,
    );
    expect(switched[0]?.note).to.match(/worker .* switched to Dual \(Centralized -> Dual\)/);
    await waitFor('both original workers seen in Dual', async () => (seenDual.size === endpoints.length ? true : undefined), 30_000, 50);
    watching = false;
    await watch;
    const failures = (await events.listNamespacedEvent({ namespace: pool.namespace })).items.filter(
      (e) => e.regarding?.name === pool.name && (e.reason === 'SessionModeSwitchFailed' || e.reason === 'AdminTokenUnavailable'),
    );
    expect(failures.map((e) => e.note)).to.deep.equal([]);

    // After the rollout the new workers run Dual from their env and take the same token.
    const rolled = await waitFor(
      'two workers started in Dual',
      async () => {
        await waitForWorkers(env, pool, 2);
        const now = await poolEndpoints(env, pool);
        const fresh = now.filter((e) => !endpoints.includes(e));
        if (fresh.length < 2) return undefined;
        const modes = await Promise.all(fresh.map((e) => adminMode(e, `Bearer ${token}`).catch(() => undefined)));
        return modes.every((m) => m?.status === 200 && m.mode === 'Dual') ? fresh : undefined;
      },
      90_000,
      250,
    );
    expect(rolled).to.have.length(2);
    const after = new WorkerClient({ endpoints: rolled });
    for (const id of ids) expect((await after.getSession(id)).id).to.equal(id);

    // The token is in no log of the run (operator, workers, services).
    const logDir = path.join(env.runDir, 'logs');
    const leaks = readdirSync(logDir).filter((file) => readFileSync(path.join(logDir, file), 'utf8').includes(token));
    expect(leaks).to.deep.equal([]);
  });
});
