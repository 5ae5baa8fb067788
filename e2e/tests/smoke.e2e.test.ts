// Proves each real part is real: the apiserver reports the pinned version, a Deployment gets
// Running pods on kwok nodes through the real controller-manager and scheduler, and keys land
// on all three Redis masters.
import { expect } from 'chai';
import { AppsV1Api, CoreV1Api, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { Cluster } from 'ioredis';
import { pinnedVersions } from '../harness/paths.ts';
import { waitFor } from '../harness/processes.ts';
import { redisRoles } from '../harness/redis-cluster.ts';
import { kubeTestEnv, redisTestEnv } from '../harness/test-env.ts';

describe('smoke: the real parts are real', () => {
  const kc = new KubeConfig();
  before(() => kc.loadFromFile(kubeTestEnv().kubeconfigPath));

  it('the apiserver reports the pinned Kubernetes version', async () => {
    const info = await kc.makeApiClient(VersionApi).getCode();
    expect(info.gitVersion).to.equal(pinnedVersions().K8S_VERSION);
  });

  it('a Deployment reaches Running pods on kwok nodes', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = 'default';
    const name = `smoke-${Date.now()}`;
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              containers: [{ name: 'main', image: 'example.invalid/not-pulled:1' }],
              tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
            },
          },
        },
      },
    });
    try {
      const pods = await waitFor(
        '3 Running pods',
        async () => {
          const list = await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` });
          const running = list.items.filter((p) => p.status?.phase === 'Running');
          return running.length === 3 ? running : undefined;
        },
        60_000,
        500,
      );
      for (const pod of pods) expect(pod.spec?.nodeName).to.match(/^kwok-node-\d+$/);
      const deployment = await apps.readNamespacedDeployment({ name, namespace });
      expect(deployment.status?.readyReplicas).to.equal(3);
    } finally {
      await apps.deleteNamespacedDeployment({ name, namespace });
    }
  });

  it('writes and reads keys on all three Redis masters', async () => {
    const { state, endpoints } = redisTestEnv();
    const cluster = new Cluster(endpoints.map((e) => ({ host: e.split(':')[0], port: Number(e.split(':')[1]) })));
    try {
      const masters = (await redisRoles(state)).filter((r) => r.role === 'master');
      expect(masters).to.have.length(3);
      const seenPorts = new Set<number>();
      for (let i = 0; i < 60; i++) {
        const key = `smoke:${i}`;
        await cluster.set(key, `value-${i}`, 'EX', 60);
        expect(await cluster.get(key)).to.equal(`value-${i}`);
        const slot = Number(await cluster.cluster('KEYSLOT', key));
        const node = cluster.slots[slot]?.[0];
        if (node) seenPorts.add(Number(node.split(':')[1]));
      }
      expect([...seenPorts].sort()).to.deep.equal(masters.map((m) => m.port).sort());
    } finally {
      cluster.disconnect();
    }
  });
});
