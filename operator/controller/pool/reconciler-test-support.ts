// The pool reconciler over fakes, for its unit tests (reconciler.test.ts): caches that answer
// from a Map, a PoolApi that records its calls (and can lag behind the cache like a watch),
// the in-memory session store, and worker pods as a Deployment's ReplicaSet makes them.
import type { KubernetesObject, V1Deployment, V1Pod, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { POOL_FINALIZER, newSessionPool, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import type { PoolApi } from './client.ts';
import { PoolMetrics } from './metrics.ts';
import { PoolReconciler, type Cache } from './reconciler.ts';
import { StoreClients } from './store-clients.ts';
import type { SweepScheduler } from './sweeper.ts';

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

export function setup(poolSpec: Parameters<typeof newSessionPool>[2] = {}, sweeps?: SweepScheduler) {
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
  const state = { lagging: false, held: [] as KubernetesObject[] };
  let rv = 100;
  const secrets = new Map<string, V1Secret>();
  const api: PoolApi = {
    apply: async (obj) => {
      calls.push(['apply', obj]);
      const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++rv), generation: rv } };
      if (state.lagging) {
        state.held.push(stored);
        return stored;
      }
      obj = stored;
      if (obj.kind === 'Deployment')
        caches.deployments.put({
          ...(obj as V1Deployment),
          status: { replicas: (obj as V1Deployment).spec?.replicas, readyReplicas: (obj as V1Deployment).spec?.replicas },
        });
      if (obj.kind === 'Service') caches.services.put(obj);
      if (obj.kind === 'PodDisruptionBudget') caches.pdbs.put(obj);
      return stored;
    },
    patchPoolStatus: async (_p, status) => void calls.push(['status', status]),
    setPoolFinalizers: async (_p, finalizers) => void calls.push(['finalizers', finalizers]),
    createMigration: async (m) => {
      calls.push(['createMigration', m]);
    },
    deleteMigration: async (_ns, name) => void calls.push(['deleteMigration', name]),
    annotatePod: async (_ns, name, annotations) => void calls.push(['annotatePod', { name, annotations }]),
    readSecret: async (ns, name): Promise<V1Secret> => {
      const secret = secrets.get(`${ns}/${name}`);
      if (secret) return secret;
      if (name.endsWith('-admin-token')) throw Object.assign(new Error('not found'), { code: 404 });
      return {};
    },
    createSecret: async (secret) => {
      calls.push(['createSecret', secret.metadata?.name]);
      const stored = { ...secret, metadata: { ...secret.metadata, uid: `secret-${++rv}` } };
      secrets.set(`${secret.metadata?.namespace}/${secret.metadata?.name}`, stored);
      return stored;
    },
  };
  const store = new MemorySessionStore();
  const stores = new StoreClients({ readSecret: (ns, name) => api.readSecret(ns, name), factory: () => store, logger: silent });
  const events: Array<[string, string]> = [];
  const adminCalls: Array<{ endpoint: string; token: string; mode: string }> = [];
  const reconciler = new PoolReconciler({
    adminCall: async (endpoint, token, mode) => {
      adminCalls.push({ endpoint, token, mode });
      return { status: 200, body: { report: { from: 'Centralized', steps: [mode] } } };
    },
    api,
    ...caches,
    stores,
    events: { record: (_o, type, reason) => void events.push([type, reason]) },
    metrics: new PoolMetrics(new Registry()),
    logger: silent,
    ...(sweeps ? { sweeps } : {}),
  });
  const of = (kind: string) => calls.filter(([k]) => k === kind).map(([, v]) => v);
  return {
    pool,
    caches,
    calls,
    of,
    store,
    reconciler,
    events,
    adminCalls,
    secrets,
    /** The cache catches up with the applies it missed. */
    catchUp() {
      for (const obj of state.held.splice(0)) {
        if (obj.kind === 'Deployment') caches.deployments.put(obj);
        if (obj.kind === 'Service') caches.services.put(obj);
        if (obj.kind === 'PodDisruptionBudget') caches.pdbs.put(obj);
      }
      state.lagging = false;
    },
    get lagging() {
      return state.lagging;
    },
    set lagging(value: boolean) {
      state.lagging = value;
    },
  };
}

/** A worker pod of pool web as its Deployment's ReplicaSet makes it; `owned: false` only wears the pool label. */
export function addPod(caches: ReturnType<typeof setup>['caches'], name: string, nodeName?: string, owned = true): void {
  const ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-workers-7c9d8f6b5', uid: 'rs', controller: true }];
  caches.pods.put({
    metadata: { name, namespace: 'ns', labels: { 'dspex.io/pool': 'web' }, ...(owned ? { ownerReferences } : {}) },
    ...(nodeName ? { spec: { nodeName, containers: [] } } : {}),
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  });
}
