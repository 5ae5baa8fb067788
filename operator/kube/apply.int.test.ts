import { expect } from 'chai';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  type KubeConfig,
  type V1ConfigMap,
  type V1Deployment,
} from '@kubernetes/client-node';
import { FIELD_MANAGER, apply, mergePatch, ownerReference, patchStatus } from './apply.ts';
import { setCondition, type Condition } from './conditions.ts';
import { createNamespace, deleteNamespace, eventually, testKubeConfig } from './test-support.ts';

const GROUP = 'kubetest.spo.dev';

describe('kube/apply (apiserver)', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let objects: KubernetesObjectApi;
  let namespace: string;

  before(async () => {
    kc = testKubeConfig();
    objects = KubernetesObjectApi.makeApiClient(kc);
    namespace = await createNamespace(kc, 'spo-kube-apply');
  });
  after(async () => deleteNamespace(kc, namespace));

  function deployment(replicas: number, image: string): V1Deployment {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'workers', namespace, labels: { app: 'workers' } },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'workers' } },
        template: { metadata: { labels: { app: 'workers' } }, spec: { containers: [{ name: 'worker', image }] } },
      },
    };
  }

  it('creates then updates a Deployment by server-side apply, as a visible field manager, keeping others’ fields', async () => {
    const created = await apply(objects, deployment(1, 'worker:1'));
    expect(created.metadata?.uid).to.be.a('string');
    const apps = kc.makeApiClient(AppsV1Api);
    let stored = await apps.readNamespacedDeployment({ name: 'workers', namespace });
    expect(stored.spec?.replicas).to.equal(1);
    const ours = stored.metadata?.managedFields?.find((m) => m.manager === FIELD_MANAGER);
    expect(ours?.operation).to.equal('Apply');

    // another manager adds an annotation; our next apply must not remove it
    await mergePatch(
      objects,
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'workers', namespace, annotations: { other: 'x' } } },
      'someone-else',
    );
    await apply(objects, deployment(3, 'worker:2'));
    stored = await apps.readNamespacedDeployment({ name: 'workers', namespace });
    expect(stored.spec?.replicas).to.equal(3);
    expect(stored.spec?.template.spec?.containers[0]?.image).to.equal('worker:2');
    expect(stored.metadata?.annotations?.other).to.equal('x');
    expect(stored.metadata?.managedFields?.map((m) => m.manager)).to.include.members([FIELD_MANAGER, 'someone-else']);

    // a child with an owner reference to the Deployment
    const owner = { ...stored, apiVersion: 'apps/v1', kind: 'Deployment' };
    const child: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'child', namespace, ownerReferences: [ownerReference(owner)] },
      data: { a: 'b' },
    };
    await apply(objects, child);
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'child', namespace });
    expect(cm.metadata?.ownerReferences?.[0]).to.deep.include({
      kind: 'Deployment',
      name: 'workers',
      uid: stored.metadata?.uid,
      controller: true,
      blockOwnerDeletion: true,
    });
  });

  it('applies a custom resource and merge-patches its status subresource with the full conditions array', async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const plural = 'widgets';
    await ext
      .createCustomResourceDefinition({
        body: {
          metadata: { name: `${plural}.${GROUP}` },
          spec: {
            group: GROUP,
            scope: 'Namespaced',
            names: { plural, singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                subresources: { status: {} },
                schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
              },
            ],
          },
        },
      })
      .catch((err: unknown) => {
        if ((err as { code?: number }).code !== 409) throw err;
      });
    await eventually(
      'CRD established',
      async () => {
        const crd = await ext.readCustomResourceDefinition({ name: `${plural}.${GROUP}` });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      20_000,
      200,
    );
    const widget = { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'w1', namespace }, spec: { size: 2 } };
    await eventually('apply of the custom resource', () => apply(objects, widget), 20_000, 200);
    await apply(objects, { ...widget, spec: { size: 3 } });

    const custom = kc.makeApiClient(CustomObjectsApi);
    const ref = { group: GROUP, version: 'v1', plural, namespace, name: 'w1' };
    let conditions: Condition[] = setCondition([], { type: 'Ready', status: 'False', reason: 'Starting' }, 1);
    conditions = setCondition(conditions, { type: 'Degraded', status: 'False', reason: 'Fine' }, 1);
    await patchStatus(custom, ref, { phase: 'Starting', conditions });
    conditions = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'AllReady' }, 1);
    const read = (await custom.getNamespacedCustomObject(ref)) as { metadata: { resourceVersion: string } };
    await patchStatus(custom, ref, { phase: 'Ready', conditions }, { resourceVersion: read.metadata.resourceVersion });
    const stored = (await custom.getNamespacedCustomObject(ref)) as {
      spec: { size: number };
      status: { phase: string; conditions: Condition[] };
    };
    expect(stored.spec.size).to.equal(3);
    expect(stored.status.phase).to.equal('Ready');
    expect(stored.status.conditions.map((c) => `${c.type}=${c.status}`)).to.deep.equal(['Ready=True', 'Degraded=False']);

    // a stale resourceVersion is refused with 409
    let code: number | undefined;
    await patchStatus(custom, ref, { phase: 'Stale' }, { resourceVersion: read.metadata.resourceVersion }).catch(
      (err: { code?: number }) => (code = err.code),
    );
    expect(code).to.equal(409);
  });
});
