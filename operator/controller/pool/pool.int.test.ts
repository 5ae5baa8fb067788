// The SessionPool reconciler against the REAL apiserver (with kube-controller-manager and kwok
// nodes) and the REAL Redis Cluster. The operator runs in-process (startOperator) watching
// one namespace of its own, with only the pool controller, so the test plays the
// SessionMigration controller's part (it sets migration status itself).
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { kubeTestEnv, redisTestEnv } from '../../../e2e/harness/test-env.ts';
import { repoRoot } from '../../../e2e/harness/paths.ts';
import { isRunning, startProcess, stopProcess, type ProcessRecord } from '../../../e2e/harness/processes.ts';
import {
  GROUP,
  POOL_FINALIZER,
  SESSION_MIGRATION_PLURAL,
  SESSION_POOL_PLURAL,
  VERSION,
  type SessionMigration,
  type SessionPool,
} from '../../api/index.ts';
import { parseOperatorConfig } from '../../cmd/config.ts';
import { startOperator, type OperatorHandle } from '../../cmd/operator.ts';
import { isNotFound } from '../../kube/errors.ts';
import { createSessionStore, type SessionStore } from '../../store/index.ts';
import { POD_DELETION_COST_ANNOTATION, STORE_HASH_ANNOTATION, VICTIM_DELETION_COST } from './names.ts';

const exec = promisify(execFile);
const silent = pino({ level: process.env.SPO_TEST_LOG_LEVEL ?? 'silent' });
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function kubectl(args: string[]): Promise<{ stdout: string }> {
  return exec('kubectl', args, { env: process.env, cwd: repoRoot });
}

describe('SessionPool reconciler (integration: apiserver + Redis Cluster)', function () {
  this.timeout(120_000);
  const kc = new KubeConfig();
  let custom: CustomObjectsApi;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let policy: PolicyV1Api;
  let endpoints: string[];
  const namespace = `pool-int-${randomBytes(3).toString('hex')}`;
  let operator: OperatorHandle;
  const stores: SessionStore[] = [];

  function storeFor(prefix: string): SessionStore {
    const store = createSessionStore({ nodes: endpoints, keyPrefix: prefix, registry: new Registry(), logger: silent });
    stores.push(store);
    return store;
  }

  async function createPool(name: string, spec: Record<string, unknown>): Promise<SessionPool> {
    return (await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'SessionPool',
        metadata: { name },
        spec: { worker: { image: 'spo:test' }, store: { endpoints, keyPrefix: `pi${randomBytes(3).toString('hex')}` }, ...spec },
      },
    })) as SessionPool;
  }

  async function getPool(name: string): Promise<SessionPool> {
    return (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      name,
    })) as SessionPool;
  }

  async function patchPool(name: string, body: object): Promise<void> {
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace, name, body }, merge);
  }

  async function deployment(name: string): Promise<V1Deployment | undefined> {
    try {
      return await apps.readNamespacedDeployment({ name: `${name}-workers`, namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  function condition(pool: SessionPool, type: string) {
    return pool.status?.conditions?.find((c) => c.type === type);
  }

  async function podsOf(name: string) {
    const list = await core.listNamespacedPod({ namespace, labelSelector: `dspex.io/pool=${name}` });
    return list.items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  before(async () => {
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    endpoints = redisTestEnv().endpoints;
    custom = kc.makeApiClient(CustomObjectsApi);
    apps = kc.makeApiClient(AppsV1Api);
    core = kc.makeApiClient(CoreV1Api);
    policy = kc.makeApiClient(PolicyV1Api);
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(['wait', '--for=condition=Established', 'crd/sessionpools.dspex.io', 'crd/sessionmigrations.dspex.io', '--timeout=30s']);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const config = parseOperatorConfig({
      argv: [
        '--metrics-port=0',
        '--metrics-host=127.0.0.1',
        `--namespace=${namespace}`,
        '--controllers=pool',
        '--autoscale-interval-seconds=1',
        '--resync-seconds=30',
        '--worker-network-policy',
        '--operator-namespace=spo-system',
        '--operator-pod-labels=app.kubernetes.io/name=session-pool-operator,app.kubernetes.io/instance=spo',
        '--worker-network-policy-extra-peers=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
      ],
      env: {},
      hostname: 'pool-int',
    });
    operator = await startOperator(config, { registry: new Registry(), logger: silent, tuning: { evacuationPollMs: 300 } });
    await operator.synced;
  });

  after(async () => {
    // Pools with Retain or an unreachable store must not hold the namespace: drop finalizers.
    try {
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SESSION_POOL_PLURAL,
        namespace,
      })) as { items: SessionPool[] };
      for (const pool of list.items) await patchPool(pool.metadata.name ?? '', { metadata: { finalizers: null } }).catch(() => undefined);
    } catch {
      // the CRD or namespace is gone already
    }
    await operator?.stop();
    await Promise.all(stores.map((s) => s.close()));
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('creates the Deployment, Service and PDB with owner references, labels and the worker env; adds the finalizer; reports status', async () => {
    const created = await createPool('basic', { replicas: 2, sessions: { ttlSeconds: 600, anonymousTtlSeconds: 60 } });
    const dep = await waitFor('Deployment', () => deployment('basic'));
    const owner = dep.metadata?.ownerReferences?.[0];
    expect(owner).to.include({ kind: 'SessionPool', name: 'basic', uid: created.metadata.uid, controller: true });
    expect(dep.spec?.replicas).to.equal(2);
    const labels = dep.spec?.template.metadata?.labels ?? {};
    expect(labels).to.include({
      'app.kubernetes.io/name': 'session-worker',
      'app.kubernetes.io/component': 'session-worker',
      'app.kubernetes.io/instance': 'basic',
      'app.kubernetes.io/managed-by': 'session-pool-operator',
      'dspex.io/pool': 'basic',
    });
    const container = dep.spec?.template.spec?.containers.find((c) => c.name === 'worker');
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath ?? e.valueFrom]));
    expect(env.SPO_POOL).to.equal('basic');
    expect(env.SPO_POOL_NAMESPACE).to.equal(namespace);
    expect(env.SPO_REDIS_NODES).to.equal(endpoints.join(','));
    expect(env.SPO_SESSION_TTL_SECONDS).to.equal('600');
    expect(env.SPO_ANON_TTL_SECONDS).to.equal('60');
    expect(env.SPO_WORKER_NAME).to.equal('metadata.name');
    expect(container?.readinessProbe?.httpGet?.path).to.equal('/readyz');
    expect(dep.spec?.template.spec?.terminationGracePeriodSeconds).to.be.at.least(300);

    const svc = await core.readNamespacedService({ name: 'basic', namespace });
    expect(svc.metadata?.ownerReferences?.[0]?.uid).to.equal(created.metadata.uid);
    expect(svc.spec?.selector).to.deep.equal({ 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'basic' });
    const pdb = await policy.readNamespacedPodDisruptionBudget({ name: 'basic-workers', namespace });
    expect(pdb.spec?.maxUnavailable).to.equal(1);
    expect(pdb.spec?.unhealthyPodEvictionPolicy).to.equal('AlwaysAllow');
    expect(pdb.metadata?.ownerReferences?.[0]?.controller).to.equal(true);

    const pool = await waitFor('status Ready', async () => {
      const p = await getPool('basic');
      return condition(p, 'Ready')?.status === 'True' && p.status?.readyReplicas === 2 ? p : undefined;
    });
    expect(pool.metadata.finalizers).to.include(POOL_FINALIZER);
    expect(pool.status?.selector).to.equal('app.kubernetes.io/component=session-worker,dspex.io/pool=basic');
    expect(pool.status?.activeSessions).to.equal(0);
    expect(pool.status?.phase).to.equal('Running');
    for (const type of ['Ready', 'Progressing', 'Degraded', 'StoreReachable']) {
      expect(condition(pool, type)?.observedGeneration, type).to.equal(pool.metadata.generation);
    }
    expect(condition(pool, 'StoreReachable')).to.include({ status: 'True', reason: 'StoreReachable' });
    expect(condition(pool, 'Degraded')).to.include({ status: 'False', reason: 'AsExpected' });
    expect(condition(pool, 'Progressing')).to.include({ status: 'False', reason: 'Stable' });
  });

  it("creates the pool's admin token Secret and worker NetworkPolicy, owned by the pool, as the apiserver stores them", async () => {
    const pool = await getPool('basic');
    const secret = await core.readNamespacedSecret({ name: 'basic-admin-token', namespace });
    expect(secret.immutable).to.equal(true);
    expect(secret.metadata?.ownerReferences?.[0]).to.include({ uid: pool.metadata.uid, controller: true });
    expect(Buffer.from(secret.data?.token ?? '', 'base64').toString()).to.match(/^[0-9a-f]{64}$/);
    const dep = await waitFor('Deployment', () => deployment('basic'));
    const tokenEnv = dep.spec?.template.spec?.containers.find((c) => c.name === 'worker')?.env?.find((e) => e.name === 'SPO_ADMIN_TOKEN');
    expect(tokenEnv?.valueFrom?.secretKeyRef).to.deep.include({ name: 'basic-admin-token', key: 'token' });
    expect(dep.spec?.template.metadata?.annotations?.['dspex.io/admin-token-secret-uid']).to.equal(secret.metadata?.uid);

    const networking = kc.makeApiClient(NetworkingV1Api);
    const np = await waitFor('NetworkPolicy', () =>
      networking.readNamespacedNetworkPolicy({ name: 'basic-workers', namespace }).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      }),
    );
    expect(np.metadata?.ownerReferences?.[0]).to.include({ uid: pool.metadata.uid, controller: true });
    expect(np.spec?.podSelector?.matchLabels).to.deep.equal({ 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'basic' });
    expect(np.spec?.policyTypes).to.deep.equal(['Ingress']);
    expect(np.spec?.ingress?.[0]?.ports).to.deep.equal([{ protocol: 'TCP', port: 8080 }]);
    expect(np.spec?.ingress?.[0]?._from).to.deep.equal([
      { podSelector: {} },
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'spo-system' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'session-pool-operator', 'app.kubernetes.io/instance': 'spo' } },
      },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
  });

  it('rolls a spec change out to the Deployment (env and the store hash annotation)', async () => {
    const before = await waitFor('Deployment', () => deployment('basic'));
    const hashBefore = before.spec?.template.metadata?.annotations?.[STORE_HASH_ANNOTATION];
    await patchPool('basic', { spec: { sessions: { ttlSeconds: 1200 }, worker: { image: 'spo:test2' } } });
    const after = await waitFor('Deployment updated', async () => {
      const d = await deployment('basic');
      return d?.spec?.template.spec?.containers[0]?.image === 'spo:test2' ? d : undefined;
    });
    const env = after.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'SPO_SESSION_TTL_SECONDS')?.value).to.equal('1200');
    expect(after.spec?.template.metadata?.annotations?.[STORE_HASH_ANNOTATION]).to.not.equal(hashBefore);
    const pool = await waitFor('observedGeneration', async () => {
      const p = await getPool('basic');
      return p.status?.observedGeneration === p.metadata.generation ? p : undefined;
    });
    expect(condition(pool, 'Ready')?.observedGeneration).to.equal(pool.metadata.generation);
  });

  it('follows kubectl scale on the SessionPool (scale subresource), up and down', async () => {
    await kubectl(['scale', 'sessionpool', 'basic', '-n', namespace, '--replicas=3']);
    await waitFor('Deployment at 3', async () => (await deployment('basic'))?.spec?.replicas === 3);
    // Two new pods go through the scheduler and kwok's stages to Ready: slow on a loaded machine.
    const scaled = await waitFor(
      'status replicas 3',
      async () => {
        const p = await getPool('basic');
        return p.status?.replicas === 3 && p.status.readyReplicas === 3 ? p : undefined;
      },
      60_000,
    );
    expect(scaled.status?.desiredReplicas).to.equal(3);
    expect(scaled.status?.lastScaleTime).to.be.a('string');
    const { stdout } = await kubectl(['get', 'sessionpool', 'basic', '-n', namespace, '-o', 'jsonpath={.status.desiredReplicas}']);
    expect(stdout).to.equal('3');
    // Down: the workers hold no sessions, so no evacuation is needed.
    await kubectl(['scale', 'sessionpool', 'basic', '-n', namespace, '--replicas=1']);
    await waitFor('Deployment at 1', async () => (await deployment('basic'))?.spec?.replicas === 1);
  });

  it('autoscales up on the session count and down after the window, evacuating the chosen busy workers first', async () => {
    await createPool('auto', {
      autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 5, targetSessionsPerWorker: 10, scaleDownStabilizationSeconds: 2 },
    });
    await waitFor('Deployment at 1', async () => (await deployment('auto'))?.spec?.replicas === 1);
    const pool = await getPool('auto');
    const store = storeFor(pool.spec.store.keyPrefix);
    const unowned = await Promise.all(Array.from({ length: 25 }, () => store.create({ pool: `${namespace}/auto` })));
    await waitFor('Deployment at 3 (25 sessions / 10)', async () => (await deployment('auto'))?.spec?.replicas === 3, 20_000);
    const pods = await waitFor('3 pods', async () => {
      const list = await podsOf('auto');
      return list.length === 3 ? list.map((p) => p.metadata?.name ?? '').sort() : undefined;
    });
    // Spread 9 sessions: 4, 3, 2 -> one worker is enough; the two emptiest (3 and 2) must go.
    await Promise.all(unowned.map((s) => store.delete(s.id, { pool: s.pool })));
    const [busiest, middle, emptiest] = pods as [string, string, string];
    for (const [owner, n] of [
      [busiest, 4],
      [middle, 3],
      [emptiest, 2],
    ] as const) {
      for (let i = 0; i < n; i++) await store.create({ pool: `${namespace}/auto`, owner });
    }
    const migration = await waitFor(
      'scale-down SessionMigration',
      async () => {
        const list = (await custom.listNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: SESSION_MIGRATION_PLURAL,
          namespace,
        })) as { items: SessionMigration[] };
        return list.items.find((m) => m.spec.poolRef.name === 'auto');
      },
      20_000,
    );
    expect(migration.spec.type).to.equal('Evacuate');
    expect([...(migration.spec.evacuate?.pods ?? [])].sort()).to.deep.equal([middle, emptiest].sort());
    expect(migration.metadata.ownerReferences?.[0]).to.include({ kind: 'SessionPool', name: 'auto', controller: true });
    for (const victim of [middle, emptiest]) {
      const pod = await core.readNamespacedPod({ name: victim, namespace });
      expect(pod.metadata?.annotations?.[POD_DELETION_COST_ANNOTATION]).to.equal(VICTIM_DELETION_COST);
    }
    const evacuating = await waitFor('status Evacuating', async () => {
      const p = await getPool('auto');
      return p.status?.phase === 'Evacuating' ? p : undefined;
    });
    expect(evacuating.status?.currentEvacuation?.migration).to.equal(migration.metadata.name);
    expect(condition(evacuating, 'Progressing')?.reason).to.equal('Evacuating');
    // Replicas stay while the migration has not succeeded.
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await deployment('auto'))?.spec?.replicas).to.equal(3);
    const migrations = (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_MIGRATION_PLURAL,
      namespace,
    })) as { items: SessionMigration[] };
    expect(migrations.items.filter((m) => m.spec.poolRef.name === 'auto')).to.have.length(1);

    // Play the migration controller: move the sessions, then report success.
    for (const victim of [middle, emptiest]) {
      for (const id of await store.listByOwner(`${namespace}/auto`, victim)) {
        const rec = await store.get(id, { pool: `${namespace}/auto`, touch: false });
        await store.moveOwners(`${namespace}/auto`, [{ sessionId: id, fromOwner: victim, fromEpoch: rec?.epoch ?? 0, toOwner: busiest }]);
      }
    }
    await custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: SESSION_MIGRATION_PLURAL,
        namespace,
        name: migration.metadata.name ?? '',
        body: { status: { phase: 'Succeeded', completionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } },
      },
      merge,
    );
    await waitFor('Deployment at 1 after the evacuation', async () => (await deployment('auto'))?.spec?.replicas === 1, 20_000);
    const done = await waitFor('status settled', async () => {
      const p = await getPool('auto');
      return p.status?.desiredReplicas === 1 && !p.status.currentEvacuation ? p : undefined;
    });
    expect(done.status?.activeSessions).to.equal(9);
  });

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
    const migration = await waitFor('migration', async () => {
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SESSION_MIGRATION_PLURAL,
        namespace,
      })) as { items: SessionMigration[] };
      return list.items.find((m) => m.spec.poolRef.name === 'failing');
    });
    await custom.patchNamespacedCustomObjectStatus(
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
    const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=failing' });
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

  it('reports StoreReachable False and Degraded when the store cannot be reached, without crashing', async () => {
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'SessionPool',
        metadata: { name: 'nostore' },
        spec: { replicas: 1, worker: { image: 'x' }, store: { endpoints: ['127.0.0.1:1'] }, deletionPolicy: 'Retain' },
      },
    });
    const pool = await waitFor(
      'StoreReachable False',
      async () => {
        const p = await getPool('nostore');
        return condition(p, 'StoreReachable')?.status === 'False' ? p : undefined;
      },
      30_000,
    );
    expect(condition(pool, 'StoreReachable')?.reason).to.equal('StoreUnreachable');
    expect(condition(pool, 'Degraded')).to.include({ status: 'True', reason: 'StoreUnreachable' });
    expect(pool.status?.phase).to.equal('Degraded');
    // The children are still there: the workers do not depend on the operator reaching Redis.
    expect(await deployment('nostore')).to.not.equal(undefined);
    // And other pools keep reconciling.
    await patchPool('basic', { spec: { replicas: 2 } });
    await waitFor('basic still reconciled', async () => (await deployment('basic'))?.spec?.replicas === 2);
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
      await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace, name });
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

  it('serves /metrics with the pool gauges and reconcile counters, /healthz and /readyz', async () => {
    const get = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${operator.port}${p}`);
      return { status: res.status, body: await res.text() };
    };
    expect((await get('/healthz')).status).to.equal(200);
    expect((await get('/readyz')).status).to.equal(200);
    const metrics = (await get('/metrics')).body;
    expect(metrics).to.match(/spo_operator_reconcile_total\{controller="sessionpool",result="success"\} \d+/);
    expect(metrics).to.match(new RegExp(`spo_pool_replicas\\{namespace="${namespace}",pool="basic"\\} \\d`));
    expect(metrics).to.include('spo_operator_queue_depth');
    expect(metrics).to.include(`spo_pool_condition{namespace="${namespace}",pool="basic",type="StoreReachable",status="True"} 1`);
    expect(metrics).to.include(`spo_pool_condition{namespace="${namespace}",pool="nostore",type="StoreReachable",status="False"} 1`);
    expect(metrics).to.include(`spo_pool_sessions{namespace="${namespace}",pool="auto",kind="active"} 9`);
  });
});

describe('operator leader election (integration: two operator processes)', function () {
  this.timeout(120_000);
  const namespace = `pool-le-${randomBytes(3).toString('hex')}`;
  const kc = new KubeConfig();
  let custom: CustomObjectsApi;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  const records: ProcessRecord[] = [];

  before(async () => {
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    custom = kc.makeApiClient(CustomObjectsApi);
    apps = kc.makeApiClient(AppsV1Api);
    core = kc.makeApiClient(CoreV1Api);
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', path.join(repoRoot, 'crds')]);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async () => {
    await Promise.all(records.map((r) => stopProcess(r, 5_000)));
    const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace })) as {
      items: SessionPool[];
    };
    for (const pool of list.items) {
      await custom
        .patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            plural: SESSION_POOL_PLURAL,
            namespace,
            name: pool.metadata.name ?? '',
            body: { metadata: { finalizers: null } },
          },
          merge,
        )
        .catch(() => undefined);
    }
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('the standby takes over within 15 s of the leader being SIGKILLed and reconciles a change', async () => {
    const { runDir, kubeconfigPath } = kubeTestEnv();
    for (const id of ['op-a', 'op-b']) {
      records.push(
        startProcess({
          name: `operator-le-${namespace}-${id}`,
          bin: process.execPath,
          args: [
            path.join(repoRoot, 'operator/cmd/operator.ts'),
            '--leader-elect',
            '--metrics-port=0',
            `--namespace=${namespace}`,
            '--controllers=pool',
          ],
          runDir,
          cwd: repoRoot,
          env: {
            ...process.env,
            KUBECONFIG: kubeconfigPath,
            SPO_POD_NAME: id,
            SPO_LEADER_ELECTION_NAMESPACE: namespace,
            SPO_LOG_LEVEL: 'info',
          },
        }),
      );
    }
    const lease = kc.makeApiClient(CoordinationV1Api);
    const leader = await waitFor(
      'a leader',
      async () => (await lease.readNamespacedLease({ name: 'session-pool-operator', namespace })).spec?.holderIdentity || undefined,
      30_000,
      200,
    );
    expect(['op-a', 'op-b']).to.include(leader);
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'SessionPool',
        metadata: { name: 'ha' },
        spec: {
          replicas: 1,
          worker: { image: 'x' },
          store: { endpoints: redisTestEnv().endpoints, keyPrefix: `le${randomBytes(3).toString('hex')}` },
          deletionPolicy: 'Retain',
        },
      },
    });
    await waitFor(
      'Deployment by the first leader',
      async () => (await apps.readNamespacedDeployment({ name: 'ha-workers', namespace })).spec?.replicas === 1,
      20_000,
    );

    const leaderRecord = records[leader === 'op-a' ? 0 : 1] as ProcessRecord;
    const standby = leader === 'op-a' ? 'op-b' : 'op-a';
    process.kill(leaderRecord.pid, 'SIGKILL');
    const killedAt = Date.now();
    await custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace, name: 'ha', body: { spec: { replicas: 2 } } },
      merge,
    );
    await waitFor(
      'the standby reconciles the change',
      async () => (await apps.readNamespacedDeployment({ name: 'ha-workers', namespace })).spec?.replicas === 2,
      20_000,
      100,
    );
    const tookMs = Date.now() - killedAt;
    expect(tookMs, `takeover took ${tookMs} ms`).to.be.below(15_000);
    expect((await lease.readNamespacedLease({ name: 'session-pool-operator', namespace })).spec?.holderIdentity).to.equal(standby);
    expect(isRunning(records[leader === 'op-a' ? 1 : 0] as ProcessRecord)).to.equal(true);
  });
});
