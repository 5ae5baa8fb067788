import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { defaultSessionMigrationSpec } from '../../api/index.ts';
import type { WorkerRegistration } from '../../store/types.ts';
import { ResolveError, isPodReady, poolPodsOnNode, rebalanceWorkers, resolveSources, resolveTargets } from './resolve.ts';

function pod(name: string, node: string, options: { pool?: string; ready?: boolean; deleting?: boolean } = {}): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'ns',
      labels: { 'dspex.io/pool': options.pool ?? 'p', 'app.kubernetes.io/component': 'session-worker' },
      ...(options.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    spec: { nodeName: node, containers: [] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

function worker(name: string, draining = false, pool = 'ns/p'): WorkerRegistration {
  return { pool, worker: name, endpoint: `${name}:8080`, draining, heartbeatAt: 0 };
}

describe('migration sources and targets', () => {
  const pods = [
    pod('a', 'n1'),
    pod('b', 'n1'),
    pod('c', 'n2'),
    pod('d', 'n2', { ready: false }),
    pod('e', 'n3', { deleting: true }),
    pod('x', 'n1', { pool: 'other' }),
  ];

  it('Evacuate by pods: the named pods, even when gone', () => {
    const spec = defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['gone', 'a', 'a'] } });
    expect(resolveSources(spec, pods)).to.deep.equal(['a', 'gone']);
  });

  it('Evacuate by node: every pool pod on the node, no other pool', () => {
    const spec = defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { nodeName: 'n1' } });
    expect(resolveSources(spec, pods)).to.deep.equal(['a', 'b']);
    expect(poolPodsOnNode(pods, 'p', 'n9')).to.deep.equal([]);
  });

  it('Migrate and Rebalance have no source workers', () => {
    expect(resolveSources(defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Rebalance', rebalance: {} }), pods)).to.deep.equal(
      [],
    );
  });

  it('rejects an Evacuate without pods or node', () => {
    const spec = {
      ...defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] } }),
      evacuate: { evictPods: false, keepSourcePods: false },
    };
    expect(() => resolveSources(spec, pods)).to.throw(ResolveError);
  });

  it('targets: registered, not draining, ready pod, not a source, not on a draining node', () => {
    const workers = [worker('a'), worker('b', true), worker('c'), worker('d'), worker('e'), worker('ghost'), worker('x')];
    expect(resolveTargets({ pool: 'ns/p', poolName: 'p', workers, pods, sources: ['a'] }).map((t) => t.name)).to.deep.equal(['c']);
    expect(resolveTargets({ pool: 'ns/p', poolName: 'p', workers, pods, sources: [] }).map((t) => t.name)).to.deep.equal(['a', 'c']);
    expect(
      resolveTargets({ pool: 'ns/p', poolName: 'p', workers, pods, sources: [], drainingNodes: new Set(['n1']) }).map((t) => t.name),
    ).to.deep.equal(['c']);
    expect(isPodReady(pod('z', 'n1', { deleting: true }))).to.equal(false);
  });

  it('targets: never a registration of another pool identity, even of the same name in another namespace', () => {
    const workers = [worker('a', false, 'other-ns/p'), worker('c')];
    expect(resolveTargets({ pool: 'ns/p', poolName: 'p', workers, pods, sources: [] }).map((t) => t.name)).to.deep.equal(['c']);
  });

  it('rebalance: weight 0 empties a worker, others keep their weight', () => {
    const workers = [worker('a'), worker('c')];
    const { participants, emptied } = rebalanceWorkers({
      pool: 'ns/p',
      poolName: 'p',
      workers,
      pods,
      sources: [],
      weights: { a: 0, c: 3 },
    });
    expect(participants).to.deep.equal([{ name: 'c', weight: 3 }]);
    expect(emptied).to.deep.equal(['a']);
  });
});
