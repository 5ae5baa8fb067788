// Pools are tenants (issue 12): two SessionPools named `sample` in two namespaces, on one Redis
// Cluster with one key prefix, through the operator and the CRD. Traffic runs on both; each pool
// counts only its own sessions; the other's session ids answer 404 through a pool's workers (GET,
// execute and DELETE alike); deleting one pool (deletionPolicy Delete) removes its sessions and
// leaves every session and every acknowledged write of the other in place.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { GROUP, SESSION_POOL_PLURAL, VERSION } from '../../operator/api/index.ts';
import { waitFor } from '../harness/processes.ts';
import { expectNothingLost, log } from './support/assertions.ts';
import {
  createPool,
  deletePool,
  getPool,
  poolEndpoints,
  poolPods,
  setupMigrationEnv,
  teardownMigrationEnv,
  type MigrationEnv,
  type TestPool,
} from './support/migration-env.ts';
import { Traffic } from './support/traffic.ts';

const SESSIONS = 60;

/** Status and body of one request to one worker (no retries: what that worker itself answers). */
async function ask(endpoint: string, method: string, path: string, body?: unknown): Promise<{ status: number; code?: string }> {
  const response = await fetch(`http://${endpoint}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const json = (await response.json().catch(() => ({}))) as { error?: { code?: string } };
  return { status: response.status, ...(json.error?.code ? { code: json.error.code } : {}) };
}

describe('pool identity: two pools of the same name in two namespaces on one Redis Cluster', function () {
  const suffix = randomBytes(3).toString('hex');
  const keyPrefix = `e2e-iso-${suffix}`;
  let env: MigrationEnv | undefined;
  let first: TestPool | undefined;
  let second: TestPool | undefined;
  let firstTraffic: Traffic | undefined;
  let secondTraffic: Traffic | undefined;

  before(async function () {
    this.timeout(120_000);
    env = await setupMigrationEnv();
  });

  after(async function () {
    this.timeout(90_000);
    await firstTraffic?.stop();
    await secondTraffic?.stop();
    if (env) for (const pool of [first, second]) await deletePool(env, pool);
    await teardownMigrationEnv(env);
  });

  it('never sees, counts or serves the other pool, and deleting one leaves the other whole', async function () {
    this.timeout(300_000);
    const e = env!;
    // Same name, same store, same key prefix: only the namespace differs.
    first = await createPool(e, { replicas: 2, prefix: 'sample', name: 'sample', namespace: `iso-a-${suffix}`, keyPrefix });
    second = await createPool(e, { replicas: 2, prefix: 'sample', name: 'sample', namespace: `iso-b-${suffix}`, keyPrefix });
    expect(first.id).to.not.equal(second.id);

    firstTraffic = new Traffic(e, first);
    secondTraffic = new Traffic(e, second);
    await firstTraffic.start(SESSIONS, 4);
    await secondTraffic.start(SESSIONS, 4);
    await waitFor(
      'traffic acknowledged on both pools',
      async () => firstTraffic!.totalAcked() >= 200 && secondTraffic!.totalAcked() >= 200,
      60_000,
      100,
    );

    // Each pool counts its own sessions only (a shared identity would count both: 2 × SESSIONS).
    for (const pool of [first, second]) {
      expect(await pool.store.count(pool.id), pool.id).to.equal(SESSIONS);
      const status = await waitFor(
        `${pool.id} status counts its ${SESSIONS} sessions`,
        async () => {
          const p = await getPool(e, pool);
          return p?.status?.activeSessions === SESSIONS ? p.status : undefined;
        },
        60_000,
        250,
      );
      expect(status.activeSessions).to.equal(SESSIONS);
    }

    // The other pool's sessions are not there for a pool's workers: GET, execute and DELETE answer 404.
    const firstEndpoints = await poolEndpoints(e, first);
    const secondEndpoints = await poolEndpoints(e, second);
    expect(firstEndpoints).to.have.length(2);
    expect(secondEndpoints).to.have.length(2);
    for (const [endpoints, others] of [
      [firstEndpoints, secondTraffic.stats.sessions],
      [secondEndpoints, firstTraffic.stats.sessions],
    ] as const) {
      for (const endpoint of endpoints) {
        for (const id of others.slice(0, 10)) {
          expect(await ask(endpoint, 'GET', `/v1/sessions/${id}`), `GET ${id} via ${endpoint}`).to.deep.equal({
            status: 404,
            code: 'SESSION_NOT_FOUND',
          });
          expect(
            await ask(endpoint, 'POST', `/v1/sessions/${id}/execute`, { handler: 'incr', args: { key: 'n' } }),
            `execute ${id}`,
          ).to.deep.include({ status: 404 });
          expect(await ask(endpoint, 'DELETE', `/v1/sessions/${id}`), `DELETE ${id}`).to.deep.include({ status: 404 });
        }
      }
    }
    // ... while its own sessions are served by the same workers.
    expect((await ask(firstEndpoints[0]!, 'GET', `/v1/sessions/${firstTraffic.stats.sessions[0]}`)).status).to.equal(200);

    // Delete the first pool while the second's traffic goes on.
    const firstStats = await firstTraffic.stop();
    const firstIds = firstStats.sessions;
    firstTraffic = undefined;
    const deleted = first;
    await e.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace: deleted.namespace,
      name: deleted.name,
    });
    await waitFor('the first pool is gone (its finalizer ran)', async () => (await getPool(e, deleted)) === undefined, 90_000, 250);
    // The deletion did delete: the first pool's sessions are gone, and its registrations once its workers
    // are (the finalizer removes them, but a worker that still runs registers again with its next heartbeat
    // and its drain, until it unregisters as it exits).
    expect(await deleted.store.count(deleted.id)).to.equal(0);
    for (const id of firstIds) expect(await deleted.store.get(id, { pool: deleted.id, touch: false }), id).to.equal(null);
    await waitFor(
      "the first pool's pods gone (drained, exited)",
      async () => (await poolPods(e, deleted)).length === 0 || undefined,
      90_000,
      250,
    );
    expect(await deleted.store.listWorkers(deleted.id)).to.deep.equal([]);
    await deleted.store.close();
    first = undefined;

    // Let the second pool's traffic run on past the deletion, then check it lost nothing.
    const ackedAtDeletion = secondTraffic.totalAcked();
    await waitFor('traffic goes on after the deletion', async () => secondTraffic!.totalAcked() >= ackedAtDeletion + 100, 60_000, 100);
    const report = await expectNothingLost(second, secondTraffic);
    secondTraffic = undefined;
    expect(report.sessions).to.equal(SESSIONS);
    expect(await second.store.count(second.id)).to.equal(SESSIONS);
    expect((await second.store.listWorkers(second.id)).map((w) => w.pool)).to.deep.equal([second.id, second.id]);
    const status = (await getPool(e, second))?.status;
    log(`second pool after the first's deletion: ${status?.activeSessions} active sessions, ${status?.readyReplicas} ready workers`);
  });
});
