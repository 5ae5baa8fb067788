// The SessionPool reconciler and the pool's sessions in the REAL Redis Cluster (with the REAL
// apiserver, kube-controller-manager and kwok nodes): a failed scale-down evacuation, the
// session count in status, a dead worker's sessions released, and the sessions deleted or kept
// with the pool. The operator runs in-process (pool-int-test-support.ts), with only the pool
// controller, so the test plays the SessionMigration controller's part.
import { expect } from 'chai';
import { GROUP, POOL_FINALIZER, SESSION_MIGRATION_PLURAL, SESSION_POOL_PLURAL, VERSION } from '../../api/index.ts';
import { isNotFound } from '../../kube/errors.ts';
import { merge, poolOperatorOnApiserver, waitFor } from './pool-int-test-support.ts';

describe('SessionPool reconciler and the session store (integration: apiserver + Redis Cluster)', function () {
  this.timeout(120_000);
  const cluster = poolOperatorOnApiserver('pool-ses');
  const { namespace, storeFor, createPool, getPool, patchPool, deployment, migrationsOf, condition, podsOf } = cluster;

  it('keeps replicas and reports Degraded when the scale-down evacuation fails', async () => {
    // Counts are read every sweep interval: a short one, so the sessions are seen at once.
    await createPool('failing', { replicas: 2, sessions: { sweepIntervalSeconds: 2 } });
    const pods = await waitFor('2 pods', async () => {
      const list = await podsOf('failing');
      return list.length === 2 ? list.map((p) => p.metadata?.name ?? '') : undefined;
    });
    const pool = await getPool('failing');
    const store = storeFor(pool.spec.store.keyPrefix);
    for (const owner of pods) await store.create({ pool: `${namespace}/failing`, owner });
    await waitFor('sessions counted', async () => (await getPool('failing')).status?.activeSessions === 2);
    await patchPool('failing', { spec: { replicas: 1 } });
    const migration = await waitFor('migration', async () => (await migrationsOf('failing'))[0]);
    await cluster.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: SESSION_MIGRATION_PLURAL,
        namespace,
        name: migration.metadata.name ?? '',
        body: {
          status: {
            phase: 'RolledBack',
            reason: 'TargetGone',
            message: 'no ready target',
            completionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        },
      },
      merge,
    );
    const degraded = await waitFor('Degraded EvacuationFailed', async () => {
      const p = await getPool('failing');
      return condition(p, 'Degraded')?.reason === 'EvacuationFailed' ? p : undefined;
    });
    expect(condition(degraded, 'Degraded')?.status).to.equal('True');
    expect(degraded.status?.phase).to.equal('Degraded');
    expect((await deployment('failing'))?.spec?.replicas).to.equal(2);
    const events = await cluster.core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=failing' });
    expect(events.items.map((e) => e.reason)).to.include('EvacuationFailed');
  });

  it('status.activeSessions follows the session count within a sweep interval, without reconcile polling', async () => {
    await createPool('counted', { replicas: 1, sessions: { sweepIntervalSeconds: 2 } });
    const pool = await waitFor(
      'pool settled',
      async () => {
        const p = await getPool('counted');
        return p.status?.activeSessions === 0 && condition(p, 'Ready')?.status === 'True' ? p : undefined;
      },
      60_000,
    );
    const store = storeFor(pool.spec.store.keyPrefix);
    const [worker] = (await podsOf('counted')).map((p) => p.metadata?.name ?? '');
    const sessions = await Promise.all(
      Array.from({ length: 5 }, () => store.create({ pool: `${namespace}/counted`, ...(worker ? { owner: worker } : {}) })),
    );
    // Up: within one sweep interval (2 s) plus a reconcile.
    let t0 = Date.now();
    const up = await waitFor('activeSessions 5', async () => {
      const p = await getPool('counted');
      return p.status?.activeSessions === 5 ? p : undefined;
    });
    expect(Date.now() - t0).to.be.below(6_000);
    expect(up.status?.sessionsPerWorker?.workers?.[0]).to.deep.equal({ worker, sessions: 5 });
    // Down.
    await Promise.all(sessions.slice(0, 3).map((s) => store.delete(s.id, { pool: s.pool })));
    t0 = Date.now();
    await waitFor('activeSessions 2', async () => (await getPool('counted')).status?.activeSessions === 2);
    expect(Date.now() - t0).to.be.below(6_000);
    // Nothing changes: the status is not rewritten (no reconcile polling writes).
    const rv = (await getPool('counted')).metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await getPool('counted')).metadata.resourceVersion).to.equal(rv);
  });

  it("releases a dead worker's sessions to the pool and drops its registration", async () => {
    await createPool('dead', { replicas: 1, sessions: { sweepIntervalSeconds: 2 } });
    await waitFor('Deployment', () => deployment('dead'));
    const pool = await getPool('dead');
    const store = storeFor(pool.spec.store.keyPrefix);
    await store.registerWorker(
      { pool: `${namespace}/dead`, worker: 'dead-workers-gone-1', endpoint: '127.0.0.1:1', draining: false },
      60_000,
    );
    const sessions = await Promise.all(
      Array.from({ length: 3 }, () => store.create({ pool: `${namespace}/dead`, owner: 'dead-workers-gone-1' })),
    );
    await waitFor(
      'sessions released',
      async () => (await store.listByOwner(`${namespace}/dead`, 'dead-workers-gone-1')).length === 0,
      20_000,
    );
    for (const s of sessions) expect((await store.get(s.id, { pool: s.pool, touch: false }))?.owner).to.equal(null);
    expect((await store.listWorkers(`${namespace}/dead`)).map((w) => w.worker)).to.not.include('dead-workers-gone-1');
  });

  it("leaves a terminating pod's worker alone while it is registered (draining), releases it once it unregisters", async () => {
    await createPool('drainw', { replicas: 1, sessions: { sweepIntervalSeconds: 2 } });
    const [podName] = await waitFor('the pod', async () => {
      const names = (await podsOf('drainw')).map((p) => p.metadata?.name ?? '');
      return names.length === 1 ? names : undefined;
    });
    const pool = await getPool('drainw');
    const store = storeFor(pool.spec.store.keyPrefix);
    const poolId = `${namespace}/drainw`;
    const worker = podName!;
    // The worker drains (registered as draining, its sessions still owned by it: in WorkerLocal its memory
    // is being written to the store), and its pod is terminating (a finalizer holds it there).
    await store.registerWorker({ pool: poolId, worker, endpoint: '127.0.0.1:1', draining: true }, 60_000);
    const sessions = await Promise.all(Array.from({ length: 3 }, () => store.create({ pool: poolId, owner: worker })));
    await cluster.core.patchNamespacedPod({ name: worker, namespace, body: { metadata: { finalizers: ['dspex.io/test-hold'] } } }, merge);
    await cluster.core.deleteNamespacedPod({ name: worker, namespace });
    try {
      // Three sweep intervals: the counts were read and the pool reconciled meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      expect((await store.listByOwner(poolId, worker)).length, 'sessions of the draining worker').to.equal(3);
      expect((await store.listWorkers(poolId)).map((w) => w.worker)).to.include(worker);
      // Its drain is over: it unregisters, and what it still owns is released.
      await store.unregisterWorker(poolId, worker);
      await waitFor('sessions released', async () => (await store.listByOwner(poolId, worker)).length === 0, 20_000);
      for (const s of sessions) expect((await store.get(s.id, { pool: poolId, touch: false }))?.owner).to.equal(null);
    } finally {
      await cluster.core.patchNamespacedPod({ name: worker, namespace, body: { metadata: { finalizers: null } } }, merge);
    }
  });

  it("deletes the pool's sessions on deletion (Delete) and keeps them (Retain)", async () => {
    await createPool('gone', { replicas: 1 });
    await createPool('kept', { replicas: 1, deletionPolicy: 'Retain' });
    const gone = await waitFor('finalizer', async () => {
      const p = await getPool('gone');
      return p.metadata.finalizers?.includes(POOL_FINALIZER) ? p : undefined;
    });
    const kept = await waitFor('finalizer', async () => {
      const p = await getPool('kept');
      return p.metadata.finalizers?.includes(POOL_FINALIZER) ? p : undefined;
    });
    const goneStore = storeFor(gone.spec.store.keyPrefix);
    const keptStore = storeFor(kept.spec.store.keyPrefix);
    await Promise.all(Array.from({ length: 30 }, () => goneStore.create({ pool: `${namespace}/gone`, owner: 'someone' })));
    await Promise.all(Array.from({ length: 5 }, () => keptStore.create({ pool: `${namespace}/kept` })));
    for (const name of ['gone', 'kept'])
      await cluster.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace, name });
    for (const name of ['gone', 'kept']) {
      await waitFor(`${name} deleted`, async () => {
        try {
          await getPool(name);
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      });
    }
    expect(await goneStore.count(`${namespace}/gone`)).to.equal(0);
    expect(await keptStore.count(`${namespace}/kept`)).to.equal(5);
  });
});
