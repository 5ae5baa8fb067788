import { expect } from 'chai';
import type { V1Node } from '@kubernetes/client-node';
import { newSessionPool } from '../../api/index.ts';
import { blockedMessage, decide, drainMigration, drainMigrationName, nodeDrainState } from './detect.ts';

function node(spec: V1Node['spec']): V1Node {
  return { metadata: { name: 'n1' }, spec };
}

describe('drain detection', () => {
  it('a cordoned node drains', () => {
    expect(nodeDrainState(node({ unschedulable: true }))).to.deep.equal({ draining: true, reason: 'cordoned' });
  });

  it('the unschedulable taint and drain taints drain; PreferNoSchedule and other taints do not', () => {
    expect(nodeDrainState(node({ taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] })).draining).to.equal(true);
    expect(nodeDrainState(node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1', effect: 'NoSchedule' }] })).reason).to.equal(
      'taint ToBeDeletedByClusterAutoscaler',
    );
    expect(nodeDrainState(node({ taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] })).draining).to.equal(true);
    expect(nodeDrainState(node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'PreferNoSchedule' }] })).draining).to.equal(
      false,
    );
    expect(nodeDrainState(node({ taints: [{ key: 'kwok.x-k8s.io/node', effect: 'NoSchedule' }] })).draining).to.equal(false);
    expect(
      nodeDrainState(node({ taints: [{ key: 'example.com/maintenance', effect: 'NoExecute' }] }), ['example.com/maintenance']).draining,
    ).to.equal(true);
    expect(nodeDrainState(node({})).draining).to.equal(false);
  });

  it('names the migration deterministically, valid even for odd node names', () => {
    expect(drainMigrationName('pool', 'kwok-node-1')).to.equal('pool-drain-kwok-node-1');
    expect(drainMigrationName('pool', 'kwok-node-1')).to.equal(drainMigrationName('pool', 'kwok-node-1'));
    const odd = drainMigrationName('pool', 'Node_With:Odd/Chars');
    expect(odd).to.match(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(odd).to.not.equal(drainMigrationName('pool', 'node-with-odd-chars2'));
    expect(drainMigrationName('p', 'x'.repeat(400)).length).to.be.at.most(253);
  });

  it('builds an Evacuate of the node, owned by the pool, per the maintenance policy', () => {
    const pool = newSessionPool('pool', 'ns', {
      replicas: 3,
      worker: { image: 'i' },
      store: { endpoints: ['r:6379'] },
      maintenance: { evictAfterEvacuation: true, drainDeadlineSeconds: 120 },
    });
    pool.metadata.uid = 'u1';
    const m = drainMigration(pool, 'kwok-node-2', { force: true });
    expect(m.metadata.name).to.equal('pool-drain-kwok-node-2');
    expect(m.spec.evacuate).to.deep.equal({ nodeName: 'kwok-node-2', evictPods: true, keepSourcePods: false });
    expect(m.spec.deadlineSeconds).to.equal(120);
    expect(m.metadata.ownerReferences?.[0]?.uid).to.equal('u1');
    expect(m.metadata.annotations?.['dspex.io/force-drain']).to.equal('true');
  });

  it('decides: create once, wait, report, delete when the node is back', () => {
    const draining = { draining: true, reason: 'cordoned' };
    expect(decide({ state: draining, evacuateOnCordon: true, podsOnNode: 2 }).action).to.equal('create');
    expect(decide({ state: draining, evacuateOnCordon: false, podsOnNode: 2 }).action).to.equal('none');
    expect(decide({ state: draining, evacuateOnCordon: true, podsOnNode: 0 }).action).to.equal('none');
    expect(
      decide({ state: draining, evacuateOnCordon: true, podsOnNode: 2, existing: { phase: 'Running', terminal: false } }).action,
    ).to.equal('none');
    expect(
      decide({ state: draining, evacuateOnCordon: true, podsOnNode: 0, existing: { phase: 'Succeeded', terminal: true } }).action,
    ).to.equal('report-done');
    expect(
      decide({ state: draining, evacuateOnCordon: true, podsOnNode: 1, existing: { phase: 'RolledBack', terminal: true } }).action,
    ).to.equal('report-blocked');
    expect(
      decide({
        state: { draining: false, reason: '' },
        evacuateOnCordon: true,
        podsOnNode: 0,
        existing: { phase: 'Succeeded', terminal: true },
      }).action,
    ).to.equal('delete');
    expect(
      decide({
        state: { draining: false, reason: '' },
        evacuateOnCordon: true,
        podsOnNode: 1,
        existing: { phase: 'Running', terminal: false },
      }).action,
    ).to.equal('none');
  });

  it('a blocked drain says why, what is left and how to force', () => {
    const message = blockedMessage(
      'n1',
      {
        apiVersion: 'dspex.io/v1alpha1',
        kind: 'SessionMigration',
        metadata: { name: 'm' },
        spec: {} as never,
        status: { phase: 'Failed', reason: 'NoTargets', message: 'no worker', progress: { moved: 0, remaining: 7, failed: 0 } },
      },
      ['w-1'],
    );
    expect(message).to.contain('NoTargets').and.to.contain('w-1').and.to.contain('7 sessions').and.to.contain('dspex.io/force-drain=true');
  });
});
