// The pool reconciler's guarded steps, one case each, over the fakes of reconciler-test-support.ts.
import { expect } from 'chai';
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { POOL_FINALIZER, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { addPod, setup } from './reconciler-test-support.ts';

describe('pool/reconciler (fake client and store)', () => {
  it('adds the finalizer before anything else', async () => {
    const t = setup();
    t.pool.metadata.finalizers = ['other'];
    await t.reconciler.reconcile('ns/web');
    expect(t.calls).to.deep.equal([['finalizers', ['other', POOL_FINALIZER]]]);
  });

  it('applies the three children, patches status, and on a re-run sends nothing unchanged', async () => {
    const t = setup();
    const result = await t.reconciler.reconcile('ns/web');
    expect(
      t
        .of('apply')
        .map((o) => (o as KubernetesObject).kind)
        .sort(),
    ).to.deep.equal(['Deployment', 'PodDisruptionBudget', 'Service']);
    expect(t.of('status')).to.have.length(1);
    expect(result.requeueAfterMs, 'no polling: a fixed-size pool is not requeued').to.equal(undefined);
    t.pool.status = t.of('status')[0] as SessionPool['status'];
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.calls, 'a reconcile that changes nothing writes nothing').to.deep.equal([]);
  });

  it('creates the admin token Secret once, before the Deployment that names it, and switches live workers with it', async () => {
    const t = setup({ sessionMode: 'Dual' });
    addPod(t.caches, 'web-1');
    await t.store.registerWorker({ pool: 'ns/web', worker: 'web-1', endpoint: '10.0.0.1:8080', draining: false });
    await t.reconciler.reconcile('ns/web');
    const kinds = t.calls
      .filter(([k]) => k === 'createSecret' || k === 'apply')
      .map(([k, v]) => (k === 'apply' ? (v as KubernetesObject).kind : k));
    expect(kinds[0]).to.equal('createSecret');
    expect(kinds).to.include('Deployment');
    const secret = t.secrets.get('ns/web-admin-token');
    const token = Buffer.from(secret?.data?.token ?? '', 'base64').toString();
    expect(token).to.match(/^[0-9a-f]{64}$/);
    const deployment = t.of('apply').find((o) => (o as KubernetesObject).kind === 'Deployment') as V1Deployment;
    expect(deployment.spec?.template.metadata?.annotations?.['dspex.io/admin-token-secret-uid']).to.equal(secret?.metadata?.uid);
    expect(t.adminCalls).to.deep.equal([{ endpoint: '10.0.0.1:8080', token, mode: 'Dual' }]);
    expect(t.events).to.deep.include(['Normal', 'AdminTokenCreated']);
    expect(t.events).to.deep.include(['Normal', 'SessionModeSwitched']);
    t.pool.status = t.of('status')[0] as SessionPool['status'];
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.of('createSecret')).to.deep.equal([]);
    expect(t.adminCalls, 'a worker is asked once per mode').to.have.length(1);
  });

  it('leaves the Deployment alone and retries when the admin token Secret is not usable', async () => {
    const t = setup();
    t.secrets.set('ns/web-admin-token', { metadata: { name: 'web-admin-token', namespace: 'ns', uid: 's' }, data: { token: 'eA==' } });
    const error = await t.reconciler.reconcile('ns/web').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(error)).to.match(/admin token is unavailable/);
    expect(t.of('apply')).to.deep.equal([]);
    expect(t.events).to.deep.include(['Warning', 'AdminTokenUnavailable']);
  });

  it('schedules the sweep instead of sweeping, and forgets it with the pool', async () => {
    const scheduled = new Map<string, number>();
    const t = setup({}, { schedule: (key, ms) => void scheduled.set(key, ms), forget: (key) => void scheduled.delete(key) });
    await t.reconciler.reconcile('ns/web');
    expect(scheduled.get('ns/web')).to.equal(t.pool.spec.sessions.sweepIntervalSeconds * 1000);
    t.caches.pools.items.clear();
    await t.reconciler.reconcile('ns/web');
    expect(scheduled.size).to.equal(0);
  });

  it('does not re-send an apply the cache has not shown yet, but re-applies a child changed by someone else', async () => {
    const t = setup();
    t.lagging = true; // applies do not reach the cache
    await t.reconciler.reconcile('ns/web');
    expect(t.of('apply')).to.have.length(3);
    t.calls.length = 0;
    const again = await t.reconciler.reconcile('ns/web');
    expect(t.of('apply'), 'the watch lags: nothing sent twice').to.have.length(0);
    expect(again.requeueAfterMs, 'looks again soon').to.be.a('number');
    // The cache catches up, then someone edits the Deployment's spec (generation moves, our hash stays).
    t.catchUp();
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.of('apply')).to.have.length(0);
    const cached = t.caches.deployments.get('web-workers', 'ns') as V1Deployment;
    t.caches.deployments.put({
      ...cached,
      metadata: { ...cached.metadata, generation: (cached.metadata?.generation ?? 0) + 1, resourceVersion: 'other' },
    });
    await t.reconciler.reconcile('ns/web');
    expect((t.of('apply') as KubernetesObject[]).map((o) => o.kind)).to.deep.equal(['Deployment']);
  });

  it('derives DrainBlocked from the drain migrations: True with node, pods left and how to force; False once forced', async () => {
    const t = setup();
    addPod(t.caches, 'web-a', 'node-1');
    await t.reconciler.reconcile('ns/web');
    const first = t.of('status')[0] as SessionPool['status'];
    expect(
      first?.conditions?.some((c) => c.type === 'DrainBlocked'),
      'absent while no drain was ever blocked',
    ).to.equal(false);
    t.pool.status = first;
    const drain: SessionMigration = {
      apiVersion: 'dspex.io/v1alpha1',
      kind: 'SessionMigration',
      metadata: {
        name: 'web-drain-node-1',
        namespace: 'ns',
        uid: 'm1',
        labels: { 'dspex.io/pool': 'web', 'dspex.io/purpose': 'node-drain', 'dspex.io/drain-node': 'node-1' },
        annotations: { 'dspex.io/node': 'node-1' },
        ownerReferences: [{ apiVersion: 'dspex.io/v1alpha1', kind: 'SessionPool', name: 'web', uid: 'u1', controller: true }],
      },
      spec: {
        poolRef: { name: 'web' },
        type: 'Evacuate',
        evacuate: { nodeName: 'node-1', evictPods: true, keepSourcePods: false },
        dryRun: false,
        batchSize: 500,
        deadlineSeconds: 10,
        onFailure: 'Rollback',
      },
      status: { phase: 'Failed', reason: 'NoTargets', message: 'no other worker' },
    };
    t.caches.migrations.put(drain);
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    const blocked = (t.of('status')[0] as SessionPool['status'])?.conditions?.find((c) => c.type === 'DrainBlocked');
    expect(blocked).to.include({ status: 'True', reason: 'NoTargets' });
    expect(blocked?.message).to.contain('node-1').and.to.contain('web-a').and.to.contain('dspex.io/force-drain=true');
    t.pool.status = t.of('status')[0] as SessionPool['status'];
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.of('status'), 'level-triggered, written once').to.have.length(0);
    drain.status = {
      ...drain.status,
      conditions: [{ type: 'ForcedRelease', status: 'True', reason: 'Forced', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    };
    await t.reconciler.reconcile('ns/web');
    const cleared = (t.of('status')[0] as SessionPool['status'])?.conditions?.find((c) => c.type === 'DrainBlocked');
    expect(cleared).to.include({ status: 'False', reason: 'DrainForced' });
  });

  it('reports an unreachable store in status and fails the reconcile (backoff), never crashing', async () => {
    const t = setup();
    t.store.unreachable = true;
    let failed: unknown;
    try {
      await t.reconciler.reconcile('ns/web');
    } catch (err) {
      failed = err;
    }
    expect(String(failed)).to.include('unreachable');
    const status = t.of('status')[0] as SessionPool['status'];
    expect(status?.conditions?.find((c) => c.type === 'StoreReachable')).to.include({ status: 'False', reason: 'StoreUnreachable' });
    expect(status?.conditions?.find((c) => c.type === 'Degraded')).to.include({ status: 'True' });
    expect(t.of('apply')).to.have.length(3);
    expect(t.events).to.deep.include(['Warning', 'StoreUnreachable']);
  });

  it('warns (Event InsecureTLS) on every reconcile while tls.insecureSkipVerify is set, and only then', async () => {
    const insecure = setup({ store: { endpoints: ['r:1'], tls: { enabled: true, insecureSkipVerify: true } } });
    await insecure.reconciler.reconcile('ns/web');
    await insecure.reconciler.reconcile('ns/web');
    expect(insecure.events.filter(([, reason]) => reason === 'InsecureTLS')).to.deep.equal([
      ['Warning', 'InsecureTLS'],
      ['Warning', 'InsecureTLS'],
    ]);
    const verified = setup({ store: { endpoints: ['r:1'], tls: { enabled: true } } });
    await verified.reconciler.reconcile('ns/web');
    expect(verified.events.filter(([, reason]) => reason === 'InsecureTLS')).to.deep.equal([]);
  });

  it('evacuates busy victims through one deterministic SessionMigration, keeping replicas', async () => {
    const t = setup();
    addPod(t.caches, 'web-a');
    addPod(t.caches, 'web-b');
    await t.reconciler.reconcile('ns/web');
    await t.store.create({ pool: 'ns/web', owner: 'web-a' });
    await t.store.create({ pool: 'ns/web', owner: 'web-a' });
    await t.store.create({ pool: 'ns/web', owner: 'web-b' });
    t.pool.spec.replicas = 1;
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    const created = t.of('createMigration') as SessionMigration[];
    expect(created).to.have.length(1);
    expect(created[0]?.spec).to.deep.include({ type: 'Evacuate', poolRef: { name: 'web' } });
    expect(created[0]?.spec.evacuate?.pods).to.deep.equal(['web-b']);
    expect(t.of('annotatePod')).to.deep.equal([
      { name: 'web-b', annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-2147483648' } },
    ]);
    expect((t.caches.deployments.get('web-workers', 'ns') as V1Deployment).spec?.replicas).to.equal(2);
    // The migration is not in the cache yet: a second reconcile must not create another one.
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.of('createMigration')).to.have.length(0);
    // Succeeded -> replicas go down.
    const migration = created[0] as SessionMigration;
    migration.metadata.creationTimestamp = new Date();
    migration.status = { phase: 'Succeeded' };
    t.caches.migrations.put(migration);
    await t.reconciler.reconcile('ns/web');
    expect((t.caches.deployments.get('web-workers', 'ns') as V1Deployment).spec?.replicas).to.equal(1);
    expect(t.events).to.deep.include(['Normal', 'EvacuationSucceeded']);
  });

  it('sets the deletion cost only on pods its Deployment made, never on a pod that only wears the pool label', async () => {
    const t = setup();
    addPod(t.caches, 'web-a');
    addPod(t.caches, 'web-b', undefined, false);
    await t.reconciler.reconcile('ns/web');
    await t.store.create({ pool: 'ns/web', owner: 'web-a' });
    await t.store.create({ pool: 'ns/web', owner: 'web-a' });
    await t.store.create({ pool: 'ns/web', owner: 'web-b' });
    t.pool.spec.replicas = 1;
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect((t.of('createMigration') as SessionMigration[])[0]?.spec.evacuate?.pods).to.deep.equal(['web-b']);
    expect(t.of('annotatePod')).to.deep.equal([]);
  });

  it('releases the sessions of a worker whose pod is gone', async () => {
    const t = setup();
    addPod(t.caches, 'web-a');
    const s = await t.store.create({ pool: 'ns/web', owner: 'web-zombie' });
    await t.store.registerWorker({ pool: 'ns/web', worker: 'web-zombie', endpoint: 'x:1', draining: false });
    await t.reconciler.reconcile('ns/web');
    expect((await t.store.get(s.id, { pool: 'ns/web', touch: false }))?.owner).to.equal(null);
    expect((await t.store.listWorkers('ns/web')).map((w) => w.worker)).to.deep.equal([]);
    expect(t.events).to.deep.include(['Normal', 'WorkerSessionsReleased']);
  });

  it('on deletion with Delete removes the sessions, then the finalizer; Retain keeps them', async () => {
    const t = setup();
    await t.store.create({ pool: 'ns/web' });
    await t.store.create({ pool: 'ns/web' });
    t.pool.metadata.deletionTimestamp = new Date();
    await t.reconciler.reconcile('ns/web');
    expect(await t.store.count('ns/web')).to.equal(0);
    expect(t.of('finalizers')).to.deep.equal([[]]);

    const r = setup({ deletionPolicy: 'Retain' });
    await r.store.create({ pool: 'ns/web' });
    r.pool.metadata.deletionTimestamp = new Date();
    await r.reconciler.reconcile('ns/web');
    expect(await r.store.count('ns/web')).to.equal(1);
    expect(r.of('finalizers')).to.deep.equal([[]]);
  });

  it('keeps the finalizer when the sessions cannot be deleted', async () => {
    const t = setup();
    t.store.unreachable = true;
    t.pool.metadata.deletionTimestamp = new Date();
    let failed = false;
    try {
      await t.reconciler.reconcile('ns/web');
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
    expect(t.of('finalizers')).to.have.length(0);
  });

  it('forgets a pool that is gone', async () => {
    const t = setup();
    t.caches.pools.items.clear();
    expect(await t.reconciler.reconcile('ns/web')).to.deep.equal({});
    expect(t.calls).to.have.length(0);
  });
});
