// Leader election of the operator with two REAL operator processes (node operator/cmd/operator.ts,
// pool controller only) on the REAL apiserver: the standby takes over when the leader is killed.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { kubeTestEnv, redisTestEnv } from '../../../e2e/harness/test-env.ts';
import { repoRoot } from '../../../e2e/harness/paths.ts';
import { isRunning, startProcess, stopProcess, type ProcessRecord } from '../../../e2e/harness/processes.ts';
import { GROUP, SESSION_POOL_PLURAL, VERSION, type SessionPool } from '../../api/index.ts';
import { kubectl, merge, waitFor } from './pool-int-test-support.ts';

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
