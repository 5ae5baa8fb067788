import { expect } from 'chai';
import { LAST_APPLIED_ANNOTATION, lean, leanDeserialize } from './informers.ts';

describe('shared informers: what the caches keep', () => {
  it('pools and migrations lose managedFields and kubectl last-applied-configuration, keep every other annotation', () => {
    const raw = {
      apiVersion: 'spo.dspex.io/v1alpha1',
      kind: 'SessionPool',
      metadata: {
        name: 'p',
        namespace: 'ns',
        managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
        annotations: { [LAST_APPLIED_ANNOTATION]: '{"spec":{"replicas":3}}', 'example.com/keep': 'yes' },
      },
      spec: { replicas: 3 },
      status: { phase: 'Ready' },
    };
    const cached = leanDeserialize<typeof raw>(structuredClone(raw));
    expect(cached.metadata).to.deep.equal({ name: 'p', namespace: 'ns', annotations: { 'example.com/keep': 'yes' } });
    expect(cached.spec).to.deep.equal(raw.spec);
    expect(cached.status).to.deep.equal(raw.status);
    const only = leanDeserialize<typeof raw>({
      ...structuredClone(raw),
      metadata: { name: 'q', annotations: { [LAST_APPLIED_ANNOTATION]: '{}' } },
    });
    expect(only.metadata).to.deep.equal({ name: 'q' });
  });

  it('pods keep only what the controllers read', () => {
    const pod = lean.pod({
      metadata: {
        name: 'w',
        namespace: 'ns',
        labels: { a: 'b' },
        annotations: { [LAST_APPLIED_ANNOTATION]: '{}', other: 'x' },
        managedFields: [{}],
      },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', env: [{ name: 'E', value: 'v' }] }] },
      status: {
        phase: 'Running',
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'Initialized', status: 'True' },
        ],
        containerStatuses: [],
      },
    });
    expect(pod.metadata).to.deep.equal({ name: 'w', namespace: 'ns', uid: undefined, resourceVersion: undefined, labels: { a: 'b' } });
    expect(pod.spec).to.deep.equal({ containers: [], nodeName: 'n1' });
    expect(pod.status).to.deep.equal({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
  });
});
