// The SessionPool reconciler against the REAL apiserver (with kube-controller-manager and kwok
// nodes) and the REAL Redis Cluster: the children and status of a pool, spec roll-outs, kubectl
// scale, autoscaling with its scale-down evacuation, an unreachable store, and /metrics. The
// operator runs in-process (pool-int-test-support.ts) watching one namespace of its own, with only
// the pool controller, so the test plays the SessionMigration controller's part (it sets
// migration status itself). The pool's sessions in the store: pool-sessions.int.test.ts.
import { expect } from 'chai';
import { NetworkingV1Api } from '@kubernetes/client-node';
import { GROUP, POOL_FINALIZER, SESSION_MIGRATION_PLURAL, VERSION } from '../../api/index.ts';
import { isNotFound } from '../../kube/errors.ts';
import { POD_DELETION_COST_ANNOTATION, STORE_HASH_ANNOTATION, VICTIM_DELETION_COST } from './names.ts';
import { kubectl, merge, poolOperatorOnApiserver, waitFor } from './pool-int-test-support.ts';

describe('SessionPool reconciler (integration: apiserver + Redis Cluster)', function () {
  this.timeout(120_000);
  const cluster = poolOperatorOnApiserver('pool-int');
  const { namespace, kc, storeFor, createPool, getPool, patchPool, deployment, migrationsOf, condition, podsOf } = cluster;

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
    expect(env.SPO_REDIS_NODES).to.equal(cluster.endpoints.join(','));
    expect(env.SPO_SESSION_TTL_SECONDS).to.equal('600');
    expect(env.SPO_ANON_TTL_SECONDS).to.equal('60');
    expect(env.SPO_WORKER_NAME).to.equal('metadata.name');
    expect(container?.readinessProbe?.httpGet?.path).to.equal('/readyz');
    expect(dep.spec?.template.spec?.terminationGracePeriodSeconds).to.be.at.least(300);

    const svc = await cluster.core.readNamespacedService({ name: 'basic', namespace });
    expect(svc.metadata?.ownerReferences?.[0]?.uid).to.equal(created.metadata.uid);
    expect(svc.spec?.selector).to.deep.equal({ 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'basic' });
    const pdb = await cluster.policy.readNamespacedPodDisruptionBudget({ name: 'basic-workers', namespace });
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
    const secret = await cluster.core.readNamespacedSecret({ name: 'basic-admin-token', namespace });
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
    const migration = await waitFor('scale-down SessionMigration', async () => (await migrationsOf('auto'))[0], 20_000);
    expect(migration.spec.type).to.equal('Evacuate');
    expect([...(migration.spec.evacuate?.pods ?? [])].sort()).to.deep.equal([middle, emptiest].sort());
    expect(migration.metadata.ownerReferences?.[0]).to.include({ kind: 'SessionPool', name: 'auto', controller: true });
    for (const victim of [middle, emptiest]) {
      const pod = await cluster.core.readNamespacedPod({ name: victim, namespace });
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
    expect(await migrationsOf('auto')).to.have.length(1);

    // Play the migration controller: move the sessions, then report success.
    for (const victim of [middle, emptiest]) {
      for (const id of await store.listByOwner(`${namespace}/auto`, victim)) {
        const rec = await store.get(id, { pool: `${namespace}/auto`, touch: false });
        await store.moveOwners(`${namespace}/auto`, [{ sessionId: id, fromOwner: victim, fromEpoch: rec?.epoch ?? 0, toOwner: busiest }]);
      }
    }
    await cluster.custom.patchNamespacedCustomObjectStatus(
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

  it('reports StoreReachable False and Degraded when the store cannot be reached, without crashing', async () => {
    await createPool('nostore', { replicas: 1, store: { endpoints: ['127.0.0.1:1'] }, deletionPolicy: 'Retain' });
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

  it('serves /metrics with the pool gauges and reconcile counters, /healthz and /readyz', async () => {
    const get = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${cluster.operator.port}${p}`);
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
