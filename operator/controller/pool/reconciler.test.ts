import { expect } from 'chai';
import type { KubernetesObject, V1Deployment, V1Pod, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { POOL_FINALIZER, newSessionPool, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { MemorySessionStore } from '../../worker/testing/memory-store.ts';
import type { PoolApi } from './client.ts';
import { PoolMetrics } from './metrics.ts';
import { PoolReconciler, type Cache } from './reconciler.ts';
import { StoreClients } from './store-clients.ts';

const silent = pino({ level: 'silent' });

class FakeCache<T extends KubernetesObject> implements Cache<T> {
  readonly items = new Map<string, T>();
  put(obj: T): void {
    this.items.set(`${obj.metadata?.namespace}/${obj.metadata?.name}`, obj);
  }
  get(name: string, namespace?: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }
  getByKey(key: string): T | undefined {
    return this.items.get(key);
  }
  list(namespace?: string): T[] {
    return [...this.items.values()].filter((o) => namespace === undefined || o.metadata?.namespace === namespace);
  }
  hasSynced(): boolean {
    return true;
  }
}

function setup(poolSpec: Parameters<typeof newSessionPool>[2] = {}) {
  const pool = newSessionPool('web', 'ns', { replicas: 2, worker: { image: 'i' }, store: { endpoints: ['r:1'] }, ...poolSpec });
  Object.assign(pool.metadata, { uid: 'u1', generation: 1, resourceVersion: '1', finalizers: [POOL_FINALIZER] });
  const caches = {
    pools: new FakeCache<SessionPool>(),
    deployments: new FakeCache<V1Deployment>(),
    services: new FakeCache<KubernetesObject>(),
    pdbs: new FakeCache<KubernetesObject>(),
    pods: new FakeCache<V1Pod>(),
    migrations: new FakeCache<SessionMigration>(),
  };
  caches.pools.put(pool);
  const calls: Array<[string, unknown]> = [];
  const api: PoolApi = {
    apply: async (obj) => {
      calls.push(['apply', obj]);
      if (obj.kind === 'Deployment')
        caches.deployments.put({
          ...(obj as V1Deployment),
          status: { replicas: (obj as V1Deployment).spec?.replicas, readyReplicas: (obj as V1Deployment).spec?.replicas },
        });
      if (obj.kind === 'Service') caches.services.put(obj);
      if (obj.kind === 'PodDisruptionBudget') caches.pdbs.put(obj);
    },
    patchPoolStatus: async (_p, status) => void calls.push(['status', status]),
    setPoolFinalizers: async (_p, finalizers) => void calls.push(['finalizers', finalizers]),
    createMigration: async (m) => {
      calls.push(['createMigration', m]);
    },
    deleteMigration: async (_ns, name) => void calls.push(['deleteMigration', name]),
    annotatePod: async (_ns, name, annotations) => void calls.push(['annotatePod', { name, annotations }]),
    readSecret: async (): Promise<V1Secret> => ({}),
  };
  const store = new MemorySessionStore();
  const stores = new StoreClients({ readSecret: (ns, name) => api.readSecret(ns, name), factory: () => store, logger: silent });
  const events: Array<[string, string]> = [];
  const reconciler = new PoolReconciler({
    api,
    ...caches,
    stores,
    events: { record: (_o, type, reason) => void events.push([type, reason]) },
    metrics: new PoolMetrics(new Registry()),
    logger: silent,
  });
  const of = (kind: string) => calls.filter(([k]) => k === kind).map(([, v]) => v);
  return { pool, caches, calls, of, store, reconciler, events };
}

function addPod(caches: ReturnType<typeof setup>['caches'], name: string): void {
  caches.pods.put({
    metadata: { name, namespace: 'ns', labels: { 'dspex.io/pool': 'web' } },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  });
}

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
    expect(result.requeueAfterMs).to.be.a('number').and.to.be.at.most(30_000);
    t.pool.status = t.of('status')[0] as SessionPool['status'];
    t.calls.length = 0;
    await t.reconciler.reconcile('ns/web');
    expect(t.of('apply')).to.have.length(0);
    expect(t.of('status')).to.have.length(0);
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

  it('evacuates busy victims through one deterministic SessionMigration, keeping replicas', async () => {
    const t = setup();
    addPod(t.caches, 'web-a');
    addPod(t.caches, 'web-b');
    await t.reconciler.reconcile('ns/web');
    await t.store.create({ pool: 'web', owner: 'web-a' });
    await t.store.create({ pool: 'web', owner: 'web-a' });
    await t.store.create({ pool: 'web', owner: 'web-b' });
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

  it('releases the sessions of a worker whose pod is gone', async () => {
    const t = setup();
    addPod(t.caches, 'web-a');
    const s = await t.store.create({ pool: 'web', owner: 'web-zombie' });
    await t.store.registerWorker({ pool: 'web', worker: 'web-zombie', endpoint: 'x:1', draining: false });
    await t.reconciler.reconcile('ns/web');
    expect((await t.store.get(s.id, { touch: false }))?.owner).to.equal(null);
    expect((await t.store.listWorkers('web')).map((w) => w.worker)).to.deep.equal([]);
    expect(t.events).to.deep.include(['Normal', 'WorkerSessionsReleased']);
  });

  it('on deletion with Delete removes the sessions, then the finalizer; Retain keeps them', async () => {
    const t = setup();
    await t.store.create({ pool: 'web' });
    await t.store.create({ pool: 'web' });
    t.pool.metadata.deletionTimestamp = new Date();
    await t.reconciler.reconcile('ns/web');
    expect(await t.store.count('web')).to.equal(0);
    expect(t.of('finalizers')).to.deep.equal([[]]);

    const r = setup({ deletionPolicy: 'Retain' });
    await r.store.create({ pool: 'web' });
    r.pool.metadata.deletionTimestamp = new Date();
    await r.reconciler.reconcile('ns/web');
    expect(await r.store.count('web')).to.equal(1);
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
