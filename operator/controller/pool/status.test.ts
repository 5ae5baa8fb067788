import { expect } from 'chai';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { computeStatus, sessionsPerWorker, statusEqual, statusPatch, type StatusInput } from './status.ts';

const now = new Date('2026-01-01T00:00:00Z');

function pool(generation = 2): SessionPool {
  const p = newSessionPool('web', 'ns', { replicas: 2, worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
  p.metadata.generation = generation;
  return p;
}

function deployment(
  o: {
    spec?: number;
    replicas?: number;
    ready?: number;
    updated?: number;
    observed?: number;
    generation?: number;
    conditions?: V1Deployment['status'] extends infer S ? (S extends { conditions?: infer C } ? C : never) : never;
  } = {},
): V1Deployment {
  return {
    metadata: { name: 'web-workers', generation: o.generation ?? 1 },
    spec: { replicas: o.spec ?? 2, selector: {}, template: {} },
    status: {
      replicas: o.replicas ?? 2,
      readyReplicas: o.ready ?? 2,
      updatedReplicas: o.updated ?? 2,
      observedGeneration: o.observed ?? 1,
      ...(o.conditions ? { conditions: o.conditions } : {}),
    },
  };
}

function pod(name: string, ready = true, extra: Partial<V1Pod['metadata']> = {}): V1Pod {
  return { metadata: { name, ...extra }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } };
}

function status(o: Partial<StatusInput> = {}) {
  return computeStatus({
    pool: pool(),
    deployment: deployment(),
    pods: [pod('a'), pod('b')],
    store: {
      reachable: true,
      activeSessions: 5,
      byOwner: new Map([
        ['a', 3],
        ['b', 2],
      ]),
    },
    scale: { desiredReplicas: 2 },
    now,
    ...o,
  });
}

const cond = (s: ReturnType<typeof status>, type: string) => s.conditions?.find((c) => c.type === type);

describe('pool/status', () => {
  it('reports a healthy pool as Running with all four conditions and observedGeneration', () => {
    const s = status();
    expect(s).to.deep.include({
      phase: 'Running',
      replicas: 2,
      readyReplicas: 2,
      desiredReplicas: 2,
      activeSessions: 5,
      observedGeneration: 2,
      selector: 'app.kubernetes.io/component=session-worker,dspex.io/pool=web',
    });
    expect(cond(s, 'Ready')).to.include({ status: 'True', reason: 'WorkersReady', observedGeneration: 2 });
    expect(cond(s, 'Progressing')).to.include({ status: 'False', reason: 'Stable' });
    expect(cond(s, 'Degraded')).to.include({ status: 'False', reason: 'AsExpected' });
    expect(cond(s, 'StoreReachable')).to.include({ status: 'True', reason: 'StoreReachable' });
    expect(s.conditions?.every((c) => c.lastTransitionTime === '2026-01-01T00:00:00Z')).to.equal(true);
  });

  it('store unreachable: StoreReachable False, Degraded True, Ready False, last counts kept', () => {
    const p = pool();
    p.status = { activeSessions: 42 };
    const s = status({ pool: p, store: { reachable: false, reason: 'StoreUnreachable', error: 'ECONNREFUSED' } });
    expect(cond(s, 'StoreReachable')).to.include({ status: 'False', reason: 'StoreUnreachable', message: 'ECONNREFUSED' });
    expect(cond(s, 'Degraded')).to.include({ status: 'True', reason: 'StoreUnreachable' });
    expect(cond(s, 'Ready')).to.include({ status: 'False' });
    expect(s.phase).to.equal('Degraded');
    expect(s.activeSessions).to.equal(42);
  });

  it('missing credentials are their own reason', () => {
    const s = status({ store: { reachable: false, reason: 'CredentialsUnavailable', error: 'Secret x missing' } });
    expect(cond(s, 'StoreReachable')?.reason).to.equal('CredentialsUnavailable');
    expect(cond(s, 'Degraded')?.reason).to.equal('CredentialsUnavailable');
  });

  it('no Deployment yet: Pending, Ready False DeploymentMissing, Progressing', () => {
    const s = status({ deployment: undefined, pods: [] });
    expect(s.phase).to.equal('Pending');
    expect(cond(s, 'Ready')?.reason).to.equal('DeploymentMissing');
    expect(cond(s, 'Progressing')).to.include({ status: 'True', reason: 'ScalingUp' });
  });

  it('scaling up: Progressing ScalingUp, Ready False until enough workers are ready', () => {
    const s = status({ deployment: deployment({ spec: 4, replicas: 4, ready: 0, updated: 4 }), scale: { desiredReplicas: 4 } });
    expect(cond(s, 'Progressing')).to.include({ status: 'True', reason: 'ScalingUp' });
    expect(cond(s, 'Ready')).to.include({ status: 'False', reason: 'WorkersNotReady' });
    expect(s.phase).to.equal('Pending');
  });

  it('rolling out a new template: Progressing RollingOut, phase Scaling', () => {
    const s = status({ deployment: deployment({ updated: 1, generation: 2, observed: 2 }) });
    expect(cond(s, 'Progressing')).to.include({ status: 'True', reason: 'RollingOut' });
    expect(s.phase).to.equal('Scaling');
  });

  it('evacuating: Progressing Evacuating, phase Evacuating, currentEvacuation set', () => {
    const evacuation = { migration: 'm1', reason: 'ScaleDown' as const, pods: ['b'], startTime: '2026-01-01T00:00:00Z' };
    const s = status({ scale: { desiredReplicas: 1, evacuation } });
    expect(cond(s, 'Progressing')).to.include({ status: 'True', reason: 'Evacuating' });
    expect(s.phase).to.equal('Evacuating');
    expect(s.currentEvacuation).to.deep.equal(evacuation);
  });

  it('blocked scale-down: Degraded with the evacuation reason', () => {
    for (const reason of ['EvacuationFailed', 'EvacuationTimedOut', 'EvacuationUnavailable'] as const) {
      const s = status({ scale: { desiredReplicas: 1, blocked: { reason, message: 'kept 2' } } });
      expect(cond(s, 'Degraded')).to.include({ status: 'True', reason, message: 'kept 2' });
      expect(s.phase).to.equal('Degraded');
    }
  });

  it('Deployment problems surface: ReplicaFailure and ProgressDeadlineExceeded', () => {
    const rf = status({ deployment: deployment({ conditions: [{ type: 'ReplicaFailure', status: 'True', message: 'quota' }] }) });
    expect(cond(rf, 'Degraded')).to.include({ reason: 'ReplicaFailure', message: 'quota' });
    const stuck = status({
      deployment: deployment({
        conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'too slow' }],
      }),
    });
    expect(cond(stuck, 'Degraded')).to.include({ reason: 'RolloutStuck' });
  });

  it('an apply refused by the apiserver is Degraded ApplyFailed', () => {
    expect(cond(status({ applyError: 'bad template' }), 'Degraded')).to.include({
      status: 'True',
      reason: 'ApplyFailed',
      message: 'bad template',
    });
  });

  it('scaled to zero is Ready', () => {
    const s = status({ deployment: deployment({ spec: 0, replicas: 0, ready: 0, updated: 0 }), pods: [], scale: { desiredReplicas: 0 } });
    expect(cond(s, 'Ready')).to.include({ status: 'True', reason: 'ScaledToZero' });
  });

  it('Terminating wins the phase', () => {
    const p = pool();
    p.metadata.deletionTimestamp = now;
    expect(status({ pool: p }).phase).to.equal('Terminating');
  });

  it('keeps lastTransitionTime while the status does not flip', () => {
    const first = status();
    const p = pool();
    p.status = first;
    const later = computeStatus({
      pool: p,
      deployment: deployment(),
      pods: [pod('a'), pod('b')],
      store: { reachable: true, activeSessions: 6, byOwner: new Map() },
      scale: { desiredReplicas: 2 },
      now: new Date('2026-01-02T00:00:00Z'),
    });
    expect(cond(later, 'Ready')?.lastTransitionTime).to.equal('2026-01-01T00:00:00Z');
    p.status = later;
    const flipped = computeStatus({
      pool: p,
      deployment: deployment({ ready: 0 }),
      pods: [],
      store: { reachable: true },
      scale: { desiredReplicas: 2 },
      now: new Date('2026-01-03T00:00:00Z'),
    });
    expect(cond(flipped, 'Ready')?.lastTransitionTime).to.equal('2026-01-03T00:00:00Z');
  });

  it('records lastScaleTime only when the reconcile scaled', () => {
    expect(status().lastScaleTime).to.equal(undefined);
    expect(status({ scale: { desiredReplicas: 2, scaledAt: now } }).lastScaleTime).to.equal('2026-01-01T00:00:00Z');
  });

  it('summarizes sessions per worker, bounded to 50 entries, busiest first, ignoring gone pods', () => {
    const pods = Array.from({ length: 60 }, (_, i) => pod(`w-${i}`));
    pods.push(pod('leaving', true, { deletionTimestamp: now }));
    const byOwner = new Map(pods.map((p, i) => [p.metadata?.name ?? '', i]));
    const summary = sessionsPerWorker(pods, byOwner);
    expect(summary?.workers).to.have.length(50);
    expect(summary?.workers?.[0]).to.deep.equal({ worker: 'w-59', sessions: 59 });
    expect(summary).to.deep.include({ min: 0, max: 59, truncated: true });
    expect(summary?.mean).to.equal(29.5);
    expect(sessionsPerWorker([], new Map())).to.equal(undefined);
    expect(sessionsPerWorker([pod('a')], new Map())).to.deep.include({ min: 0, max: 0, truncated: false });
  });

  it('compares statuses structurally and builds a merge patch that removes vanished fields', () => {
    const a = status();
    expect(statusEqual(a, structuredClone(a))).to.equal(true);
    expect(statusEqual(a, { ...a, activeSessions: 99 })).to.equal(false);
    const patch = statusPatch({ ...a, currentEvacuation: { migration: 'm', reason: 'ScaleDown', startTime: 'x' } }, a);
    expect(patch.currentEvacuation).to.equal(null);
    expect(patch.conditions).to.deep.equal(a.conditions);
  });
});
