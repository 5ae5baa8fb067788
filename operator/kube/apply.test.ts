import { expect } from 'chai';
import type { CustomObjectsApi, KubernetesObject, KubernetesObjectApi, V1Deployment } from '@kubernetes/client-node';
import { FIELD_MANAGER, apply, applyConfiguration, isControlledBy, ownerReference, patchStatus } from './apply.ts';

const deployment: V1Deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'w', namespace: 'ns', resourceVersion: '9', uid: 'u', managedFields: [{ manager: 'x' }], labels: { a: 'b' } },
  spec: { selector: { matchLabels: { a: 'b' } }, template: {} },
  status: { replicas: 3 },
};

describe('kube/apply', () => {
  it('builds an apply configuration without server-owned fields', () => {
    const config = applyConfiguration(deployment);
    expect(config.metadata).to.deep.equal({ name: 'w', namespace: 'ns', labels: { a: 'b' } });
    expect(config).to.not.have.property('status');
    expect(config.spec).to.equal(deployment.spec);
    expect(() => applyConfiguration({ kind: 'X', metadata: { name: 'n' } })).to.throw(/needs apiVersion, kind and metadata.name/);
  });

  it('sends a server-side apply with the stable field manager and force', async () => {
    const calls: unknown[][] = [];
    const client = {
      patch: async (...args: unknown[]) => {
        calls.push(args);
        return args[0] as KubernetesObject;
      },
    } as unknown as KubernetesObjectApi;
    await apply(client, deployment);
    expect(calls[0]?.slice(1)).to.deep.equal([undefined, undefined, FIELD_MANAGER, true, 'application/apply-patch+yaml']);
    expect(FIELD_MANAGER).to.equal('session-pool-operator');
  });

  it('patches status with a merge patch on the status subresource, optionally guarded by resourceVersion', async () => {
    const calls: Array<{ param: Record<string, unknown>; options: unknown }> = [];
    const api = {
      patchNamespacedCustomObjectStatus: async (param: Record<string, unknown>, options: unknown) => {
        calls.push({ param, options });
        return {};
      },
    } as unknown as CustomObjectsApi;
    const ref = { group: 'g.io', version: 'v1', plural: 'things', namespace: 'ns', name: 'n' };
    await patchStatus(api, ref, { phase: 'Ready', conditions: [] }, { resourceVersion: '5' });
    expect(calls[0]?.param).to.deep.include({ ...ref, fieldManager: FIELD_MANAGER });
    expect(calls[0]?.param.body).to.deep.equal({ status: { phase: 'Ready', conditions: [] }, metadata: { resourceVersion: '5' } });
    // setHeaderOptions adds a middleware that sets the merge-patch Content-Type
    const middleware = (calls[0]?.options as { middleware: Array<{ pre: (ctx: unknown) => unknown }> }).middleware;
    expect(middleware).to.have.length(1);
    const headers: Record<string, string> = {};
    const ctx = { setHeaderParam: (k: string, v: string) => (headers[k] = v) };
    const pre = middleware[0]?.pre(ctx) as { toPromise?: () => Promise<unknown> } | undefined;
    await pre?.toPromise?.();
    expect(headers['Content-Type']).to.equal('application/merge-patch+json');
  });

  it('builds controller owner references', () => {
    const owner = { apiVersion: 'dspex.io/v1alpha1', kind: 'SessionPool', metadata: { name: 'p', uid: 'uid-1' } };
    expect(ownerReference(owner)).to.deep.equal({
      apiVersion: 'dspex.io/v1alpha1',
      kind: 'SessionPool',
      name: 'p',
      uid: 'uid-1',
      controller: true,
      blockOwnerDeletion: true,
    });
    expect(() => ownerReference({ apiVersion: 'v1', kind: 'X', metadata: { name: 'p' } })).to.throw(/uid/);
    expect(isControlledBy({ metadata: { ownerReferences: [ownerReference(owner)] } }, owner)).to.equal(true);
    expect(isControlledBy({ metadata: {} }, owner)).to.equal(false);
  });
});
