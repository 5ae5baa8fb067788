// The product as a platform engineer installs it: `helm install` of the chart into the local
// control plane. The operator then runs as the chart's pods (the LocalKubelet runs them as
// local processes with a token of the chart's ServiceAccount, so its RBAC is the one in
// force), and drives a pool end to end: Ready, sessions through the workers, kubectl scale,
// autoscaling, a node drain, a migration of each kind, helm upgrade and helm uninstall.
import { expect } from 'chai';
import path from 'node:path';
import { AppsV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { GROUP, SESSION_POOL_PLURAL, VERSION, type SessionPool } from '../../operator/api/index.ts';
import { isConditionTrue } from '../../operator/kube/conditions.ts';
import { WorkerClient } from '../../operator/worker/client.ts';
import { binaries, repoRoot } from '../harness/paths.ts';
import { run, waitFor } from '../harness/processes.ts';
import {
  createMigration,
  createPool,
  deletePool,
  kubectl,
  poolEndpoints,
  poolPods,
  waitForPhase,
  testEnvironment,
  waitForWorkers,
  type MigrationEnv,
  type TestPool,
} from './support/migration-env.ts';
import { Traffic, ownersCount } from './support/traffic.ts';
import { expectNothingLost } from './support/assertions.ts';

const RELEASE = 'spo';
const NAMESPACE = 'spo-system';
const CHART = path.join(repoRoot, 'charts/session-pool-operator');
const CRDS = ['sessionpools.dspex.io', 'sessionmigrations.dspex.io'];

describe('helm e2e: the chart installed on the local control plane', function () {
  this.timeout(240_000);
  let env: MigrationEnv;
  let apps: AppsV1Api;
  let rbac: RbacAuthorizationV1Api;
  let pool: TestPool | undefined;
  let autoscaled: TestPool | undefined;

  const helm = (args: string[]) => run(binaries().helm, ['--kubeconfig', env.kubeconfigPath, ...args], { timeoutMs: 200_000 });

  const readPool = async (p: TestPool) =>
    (await env.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace: p.namespace,
      name: p.name,
    })) as SessionPool;

  before(async () => {
    env = testEnvironment();
    apps = env.kc.makeApiClient(AppsV1Api);
    rbac = env.kc.makeApiClient(RbacAuthorizationV1Api);
    // Other suites install the CRDs with kubectl; the chart installs (and owns) them here. A
    // resource another suite left behind keeps its finalizer with no operator to remove it,
    // and would hold the CRD's deletion forever: clear those first.
    for (const plural of ['sessionpools', 'sessionmigrations']) {
      const names = await kubectl(env, [
        'get',
        `${plural}.dspex.io`,
        '-A',
        '-o',
        'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}',
      ]).catch(() => '');
      for (const line of names.split('\n').filter(Boolean)) {
        const [namespace, name] = line.split('/');
        await kubectl(env, [
          'patch',
          `${plural}.dspex.io`,
          name!,
          '-n',
          namespace!,
          '--type=merge',
          '-p',
          '{"metadata":{"finalizers":null}}',
        ]).catch(() => '');
      }
    }
    await kubectl(env, ['delete', 'crd', ...CRDS, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    await env.kubelet.start();
  });

  after(async () => {
    await deletePool(env, pool).catch(() => undefined);
    await deletePool(env, autoscaled).catch(() => undefined);
    await helm(['uninstall', RELEASE, '-n', NAMESPACE, '--wait']).catch(() => undefined);
    await env.kubelet.stop();
  });

  it('helm install brings the operator up (two replicas, one leader) with the CRDs', async () => {
    await helm(['install', RELEASE, CHART, '-n', NAMESPACE, '--create-namespace', '--wait', '--timeout', '120s']);
    const deployments = (await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items;
    expect(deployments).to.have.length(1);
    expect(deployments[0]!.status?.readyReplicas).to.equal(2);
    for (const crd of CRDS) expect(await kubectl(env, ['get', 'crd', crd, '-o', 'name'])).to.contain(crd);
    // Both operator pods run as local processes; one holds the Lease.
    await waitFor('two operator processes', () => (env.kubelet.workers.size >= 2 ? true : undefined), 60_000, 250);
    const lease = await waitFor(
      'a leader Lease',
      async () => {
        const out = await kubectl(env, ['get', 'lease', '-n', NAMESPACE, '-o', 'jsonpath={.items[*].spec.holderIdentity}']);
        return out.trim() ? out.trim() : undefined;
      },
      60_000,
      500,
    );
    expect(lease).to.match(/session-pool-operator/);
  });

  it('a SessionPool comes up Ready and its sessions work through any worker', async () => {
    pool = await createPool(env, { replicas: 3, prefix: 'helm' });
    const ready = await waitFor(
      'pool Ready',
      async () => {
        const p = await readPool(pool!);
        return isConditionTrue(p.status?.conditions, 'Ready') ? p : undefined;
      },
      90_000,
      500,
    );
    expect(ready.status?.readyReplicas).to.equal(3);
    const client = new WorkerClient({ endpoints: await poolEndpoints(env, pool), maxAttempts: 20, baseDelayMs: 20, maxDelayMs: 300 });
    const session = await client.createSession({ vars: { n: 0 } });
    for (let i = 1; i <= 30; i++) {
      const { result } = await client.execute<{ key: string; value: number }>(session.id, 'incr', { key: 'n' });
      expect(result.value).to.equal(i);
    }
    const stored = await pool.store.get(session.id, { pool: pool.id, touch: false });
    expect((stored?.data as { vars: { n: number } }).vars.n).to.equal(30);
    // With the chart's RBAC the operator created the pool's admin token Secret and its worker
    // NetworkPolicy, which admits the operator's pods (release namespace, selector labels).
    const secret = await env.core.readNamespacedSecret({ name: `${pool.name}-admin-token`, namespace: pool.namespace });
    expect(secret.metadata?.ownerReferences?.[0]?.name).to.equal(pool.name);
    const policy = JSON.parse(await kubectl(env, ['get', 'networkpolicy', `${pool.name}-workers`, '-n', pool.namespace, '-o', 'json'])) as {
      spec: { ingress: { from: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[] };
    };
    expect(policy.spec.ingress[0]?.from.map((p) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'])).to.include(
      NAMESPACE,
    );
  });

  it('kubectl scale sessionpool resizes the workers', async () => {
    await kubectl(env, ['scale', 'sessionpool', pool!.name, '-n', pool!.namespace, '--replicas', '4']);
    const workers = await waitForWorkers(env, pool!, 4, 90_000);
    expect(workers).to.have.length.at.least(4);
    const scaled = await waitFor(
      'status.replicas 4',
      async () => ((await readPool(pool!)).status?.replicas === 4 ? true : undefined),
      60_000,
      500,
    );
    expect(scaled).to.equal(true);
  });

  it('a SessionMigration of each kind succeeds under live traffic, losing nothing', async () => {
    const traffic = new Traffic(env, pool!);
    await traffic.start(120, 6);
    try {
      const pods = (await poolPods(env, pool!))
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => p.metadata!.name!)
        .sort();
      const dry = await createMigration(env, pool!, 'dry', { type: 'Rebalance', rebalance: {}, dryRun: true });
      const dryDone = await waitForPhase(env, pool!.namespace, dry, ['Succeeded', 'Failed', 'RolledBack']);
      expect(dryDone.status?.phase).to.equal('Succeeded');
      expect(dryDone.status?.progress?.moved ?? 0).to.equal(0);

      const rebalance = await createMigration(env, pool!, 'rebalance', { type: 'Rebalance', rebalance: {} });
      expect((await waitForPhase(env, pool!.namespace, rebalance, ['Succeeded', 'Failed', 'RolledBack'])).status?.phase).to.equal(
        'Succeeded',
      );

      const someSessions = traffic.stats.sessions.slice(0, 10);
      const migrate = await createMigration(env, pool!, 'migrate', {
        type: 'Migrate',
        migrate: { sessionIds: someSessions, targetWorker: pods[0]! },
      });
      expect((await waitForPhase(env, pool!.namespace, migrate, ['Succeeded', 'Failed', 'RolledBack'])).status?.phase).to.equal(
        'Succeeded',
      );
      for (const id of someSessions) expect((await pool!.store.get(id, { pool: pool!.id, touch: false }))?.owner).to.equal(pods[0]);

      await traffic.exclude(pods[3]!);
      const evacuate = await createMigration(env, pool!, 'evacuate', {
        type: 'Evacuate',
        evacuate: { pods: [pods[3]!], evictPods: false },
      });
      expect((await waitForPhase(env, pool!.namespace, evacuate, ['Succeeded', 'Failed', 'RolledBack'])).status?.phase).to.equal(
        'Succeeded',
      );
      const report = await expectNothingLost(pool!, traffic);
      expect(ownersCount(report).get(pods[3]!) ?? 0, 'sessions left on the evacuated pod').to.equal(0);
    } finally {
      await traffic.stop();
    }
  });

  it('kubectl drain of a node with pool pods moves their sessions first and completes', async () => {
    const traffic = new Traffic(env, pool!);
    await traffic.start(80, 4);
    try {
      const pods = (await poolPods(env, pool!)).filter((p) => !p.metadata?.deletionTimestamp && p.spec?.nodeName);
      const node = pods[0]!.spec!.nodeName!;
      const onNode = pods.filter((p) => p.spec?.nodeName === node).map((p) => p.metadata!.name!);
      for (const name of onNode) await traffic.exclude(name);
      await kubectl(env, ['cordon', node]);
      await kubectl(env, ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=150s'], 170_000);
      const report = await expectNothingLost(pool!, traffic);
      for (const name of onNode) expect(ownersCount(report).get(name) ?? 0, `sessions left on ${name}`).to.equal(0);
      await kubectl(env, ['uncordon', node]);
    } finally {
      await traffic.stop();
    }
  });

  it('autoscales on sessions per worker: up with sessions, down after the window', async () => {
    autoscaled = await createPool(env, {
      replicas: 1,
      prefix: 'helm-auto',
      spec: {
        autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 3, targetSessionsPerWorker: 10, scaleDownStabilizationSeconds: 5 },
      },
    });
    const created: string[] = [];
    for (let i = 0; i < 25; i++) created.push((await autoscaled.store.create({ pool: autoscaled.id, data: { i } })).id);
    await waitForWorkers(env, autoscaled, 3, 120_000);
    for (const id of created) await autoscaled.store.delete(id, { pool: autoscaled.id });
    const down = await waitFor(
      'scaled down to 1',
      async () => {
        const p = await readPool(autoscaled!);
        return p.status?.replicas === 1 ? p : undefined;
      },
      150_000,
      1000,
    );
    expect(down.status?.desiredReplicas ?? down.status?.replicas).to.equal(1);
  });

  it('helm upgrade rolls the operator and keeps the pool serving', async () => {
    await helm(['upgrade', RELEASE, CHART, '-n', NAMESPACE, '--set', 'logLevel=debug', '--wait', '--timeout', '120s']);
    const deployment = (await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items[0]!;
    const container = deployment.spec?.template.spec?.containers[0];
    expect(container?.env?.find((e) => e.name === 'SPO_LOG_LEVEL')?.value).to.equal('debug');
    expect(deployment.metadata?.labels?.['helm.sh/chart'] ?? deployment.metadata?.annotations?.['meta.helm.sh/release-name']).to.be.a(
      'string',
    );
    await kubectl(env, ['scale', 'sessionpool', pool!.name, '-n', pool!.namespace, '--replicas', '3']);
    await waitFor(
      'pool at 3 replicas after the upgrade',
      async () => ((await readPool(pool!)).status?.replicas === 3 ? true : undefined),
      120_000,
      500,
    );
  });

  it('helm uninstall removes the operator and its RBAC, and keeps the CRDs (crds.keep)', async () => {
    await deletePool(env, pool);
    await deletePool(env, autoscaled);
    await waitFor(
      'pools deleted (finalizers done)',
      async () => {
        const list = (await env.custom.listNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: SESSION_POOL_PLURAL,
          namespace: 'default',
        })) as { items: SessionPool[] };
        return list.items.some((p) => p.metadata?.name === pool?.name || p.metadata?.name === autoscaled?.name) ? undefined : true;
      },
      60_000,
      500,
    );
    pool = undefined;
    autoscaled = undefined;
    await helm(['uninstall', RELEASE, '-n', NAMESPACE, '--wait']);
    await waitFor(
      'operator pods gone',
      async () => ((await env.core.listNamespacedPod({ namespace: NAMESPACE })).items.length === 0 ? true : undefined),
      60_000,
      500,
    );
    expect((await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items).to.have.length(0);
    expect((await env.core.listNamespacedService({ namespace: NAMESPACE })).items).to.have.length(0);
    expect((await env.core.listNamespacedServiceAccount({ namespace: NAMESPACE })).items.map((s) => s.metadata?.name)).to.deep.equal([
      'default',
    ]);
    const roles = (await rbac.listClusterRole()).items.map((r) => r.metadata?.name ?? '');
    expect(roles.filter((r) => r.includes('session-pool-operator'))).to.deep.equal([]);
    for (const crd of CRDS) expect(await kubectl(env, ['get', 'crd', crd, '-o', 'name'])).to.contain(crd);
  });
});
