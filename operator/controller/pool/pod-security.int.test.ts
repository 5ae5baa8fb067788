// The worker pod the operator builds, against the real apiserver's Pod Security admission: in a
// namespace that enforces the "restricted" standard, the default pod is admitted, a pod with
// the hardening stripped is refused, and a template that loosens a default is refused too (the
// namespace's standard bounds what a SessionPool's author can ask for).
import { expect } from 'chai';
import { ApiException, CoreV1Api, KubeConfig, type V1PodSpec } from '@kubernetes/client-node';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { kubeTestEnv } from '../../../e2e/harness/test-env.ts';
import { podSpec } from './desired.ts';

describe('pool/pod-security on the apiserver (Pod Security admission, restricted)', function () {
  this.timeout(60_000);
  const namespace = `spo-psa-${process.pid}`;
  let core: CoreV1Api;

  const pool = (spec: Parameters<typeof newSessionPool>[2] = {}): SessionPool =>
    newSessionPool('web', namespace, { replicas: 1, worker: { image: 'example.com/worker:1' }, store: { endpoints: ['r:6379'] }, ...spec });

  async function create(name: string, spec: V1PodSpec): Promise<string | undefined> {
    try {
      await core.createNamespacedPod({ namespace, body: { metadata: { name, namespace }, spec } });
      return undefined;
    } catch (err) {
      if (!(err instanceof ApiException)) throw err;
      expect(err.code, String(err.body)).to.equal(403);
      const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: string };
      return body.message ?? '';
    }
  }

  before(async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({
      body: {
        metadata: {
          name: namespace,
          labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' },
        },
      },
    });
  });

  after(async () => {
    await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('admits the default worker pod, with a handler container beside the worker', async () => {
    expect(await create('default', podSpec(pool()))).to.equal(undefined);
    const withHandler = podSpec(pool({ template: { spec: { containers: [{ name: 'handler', image: 'example.com/handler:1' }] } } }));
    expect(await create('handler', withHandler)).to.equal(undefined);
  });

  it('refuses the same pod with the hardening stripped (the check is real)', async () => {
    const bare = podSpec(pool());
    delete bare.securityContext;
    for (const c of bare.containers) delete c.securityContext;
    const refusal = await create('bare', bare);
    expect(refusal).to.contain('violates PodSecurity "restricted:latest"');
    expect(refusal).to.contain('allowPrivilegeEscalation != false').and.to.contain('unrestricted capabilities');
  });

  it('refuses a template that adds a capability, as the namespace enforces', async () => {
    const loosened = podSpec(
      pool({
        template: { spec: { containers: [{ name: 'worker', securityContext: { capabilities: { drop: ['ALL'], add: ['NET_RAW'] } } }] } },
      }),
    );
    expect(await create('loosened', loosened)).to.contain('NET_RAW');
  });
});
