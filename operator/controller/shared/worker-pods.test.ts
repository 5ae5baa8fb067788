import { expect } from 'chai';
import type { V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { isPoolWorkerPod, splitPoolWorkers } from './worker-pods.ts';

function pod(name: string, labels: Record<string, string>, owner?: Partial<V1OwnerReference>): V1Pod {
  const ownerReferences = owner
    ? [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-workers-5d8f7c9b6', uid: 'u', controller: true, ...owner }]
    : undefined;
  return { metadata: { name, namespace: 'ns', labels, ...(ownerReferences ? { ownerReferences } : {}) } };
}

const POOL = { 'dspex.io/pool': 'web' };

describe('shared/worker-pods', () => {
  it("accepts a pod with the pool label whose controller is a ReplicaSet of the pool's Deployment", () => {
    expect(isPoolWorkerPod(pod('web-workers-5d8f7c9b6-abcde', POOL, {}), 'web')).to.equal(true);
  });

  it('refuses a pod without the label, of another pool, or with a label but no such owner', () => {
    expect(isPoolWorkerPod(pod('db-0', {}, {}), 'web'), 'no label').to.equal(false);
    expect(isPoolWorkerPod(pod('x', { 'dspex.io/pool': 'other' }, {}), 'web'), 'other pool').to.equal(false);
    expect(isPoolWorkerPod(pod('x', POOL), 'web'), 'no owner').to.equal(false);
    expect(isPoolWorkerPod(pod('x', POOL, { kind: 'StatefulSet', name: 'web-workers-0' }), 'web'), 'StatefulSet').to.equal(false);
    expect(isPoolWorkerPod(pod('x', POOL, { name: 'db-5d8f7c9b6' }), 'web'), 'another ReplicaSet').to.equal(false);
    expect(isPoolWorkerPod(pod('x', POOL, { controller: false }), 'web'), 'not the controller').to.equal(false);
    expect(isPoolWorkerPod(pod('x', POOL, { apiVersion: 'example.com/v1' }), 'web'), 'foreign group').to.equal(false);
    // Pool "web" must not claim the ReplicaSets of pool "web-workers-x" (web-workers-x-workers-<hash>).
    expect(isPoolWorkerPod(pod('x', POOL, { name: 'web-workers-x-workers-5d8f7c9b6' }), 'web'), 'longer pool name').to.equal(false);
  });

  it('splits named pods into workers of the pool, refused pods and gone ones', () => {
    const pods = [pod('w1', POOL, {}), pod('db-0', { app: 'db' }), pod('fake', POOL)];
    expect(splitPoolWorkers(['w1', 'db-0', 'fake', 'gone'], pods, 'web')).to.deep.equal({
      workers: ['w1'],
      refused: ['db-0', 'fake'],
      gone: ['gone'],
    });
  });
});
