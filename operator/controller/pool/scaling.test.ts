import { expect } from 'chai';
import { newSessionPool } from '../../api/index.ts';
import {
  ScaleHistory,
  chooseVictims,
  desiredReplicas,
  evacuationName,
  planScale,
  recommendReplicas,
  seedHistory,
  stabilize,
  type ScaleInput,
} from './scaling.ts';

const auto = (
  o: Partial<{ minReplicas: number; maxReplicas: number; targetSessionsPerWorker: number; scaleDownStabilizationSeconds: number }> = {},
) => ({
  enabled: true,
  minReplicas: 1,
  maxReplicas: 10,
  targetSessionsPerWorker: 100,
  scaleDownStabilizationSeconds: 300,
  ...o,
});

function input(o: Partial<ScaleInput>): ScaleInput {
  return { pool: 'p', current: 3, desired: 3, workers: [], now: 1_000_000, deadlineMs: 300_000, retryAfterMs: 120_000, ...o };
}

const w = (name: string, sessions: number, ready = true) => ({ name, sessions, ready });

describe('pool/scaling', () => {
  describe('recommendReplicas', () => {
    it('is ceil(active / target) within [min, max]', () => {
      expect(recommendReplicas(auto(), 0)).to.equal(1);
      expect(recommendReplicas(auto(), 1)).to.equal(1);
      expect(recommendReplicas(auto(), 100)).to.equal(1);
      expect(recommendReplicas(auto(), 101)).to.equal(2);
      expect(recommendReplicas(auto(), 950)).to.equal(10);
      expect(recommendReplicas(auto(), 5000)).to.equal(10);
      expect(recommendReplicas(auto({ minReplicas: 3 }), 0)).to.equal(3);
      expect(recommendReplicas(auto({ targetSessionsPerWorker: 1 }), 7)).to.equal(7);
    });
  });

  describe('stabilize', () => {
    it('scales up at once', () => {
      expect(stabilize([{ at: 0, replicas: 2 }], 5, 2, 1000, 300_000).desired).to.equal(5);
    });
    it('scales down only to the highest recommendation within the window', () => {
      const history = [
        { at: 0, replicas: 5 },
        { at: 100_000, replicas: 4 },
      ];
      expect(stabilize(history, 1, 5, 200_000, 300_000).desired).to.equal(5);
      expect(stabilize(history, 1, 5, 350_000, 300_000).desired).to.equal(4);
      const later = stabilize(history, 1, 5, 450_000, 300_000);
      expect(later.desired).to.equal(1);
      expect(later.history).to.deep.equal([{ at: 450_000, replicas: 1 }]);
    });
    it('with a zero window follows the recommendation at once', () => {
      expect(stabilize([{ at: 0, replicas: 9 }], 2, 9, 0, 0).desired).to.equal(2);
    });
    it('never goes above the current count on the way down', () => {
      expect(stabilize([{ at: 0, replicas: 9 }], 2, 4, 10, 300_000).desired).to.equal(4);
    });
  });

  describe('history', () => {
    it('is seeded from status after a restart so the window is not skipped', () => {
      expect(seedHistory({ desiredReplicas: 6 }, 42)).to.deep.equal([{ at: 42, replicas: 6 }]);
      expect(seedHistory(undefined, 42)).to.deep.equal([]);
      const h = new ScaleHistory();
      expect(h.get('a', { desiredReplicas: 4 }, 5)).to.deep.equal([{ at: 5, replicas: 4 }]);
      h.set('a', [{ at: 9, replicas: 1 }]);
      expect(h.get('a', { desiredReplicas: 4 }, 10)).to.deep.equal([{ at: 9, replicas: 1 }]);
      h.delete('a');
      expect(h.size()).to.equal(0);
    });
  });

  describe('desiredReplicas', () => {
    it('uses spec.replicas without autoscaling', () => {
      const p = newSessionPool('p', 'n', { replicas: 4, worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
      expect(desiredReplicas(p, 1000, 2, [], 0).desired).to.equal(4);
    });
    it('starts autoscaled pools at spec.replicas within [min, max] and then follows sessions', () => {
      const p = newSessionPool('p', 'n', {
        replicas: 20,
        autoscaling: auto({ maxReplicas: 5 }),
        worker: { image: 'i' },
        store: { endpoints: ['r:1'] },
      });
      expect(desiredReplicas(p, 0, undefined, [], 0).desired).to.equal(5);
      expect(desiredReplicas(p, 250, 1, [], 0).desired).to.equal(3);
    });
    it('holds the current count when the session count is unknown', () => {
      const p = newSessionPool('p', 'n', { autoscaling: auto(), worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
      expect(desiredReplicas(p, undefined, 7, [], 0).desired).to.equal(7);
    });
  });

  describe('chooseVictims', () => {
    it('picks the workers with the fewest sessions, not-ready first on a tie, stable by name', () => {
      const workers = [w('a', 5), w('b', 1), w('c', 1, false), w('d', 0), w('e', 9)];
      expect(chooseVictims(workers, 2).map((v) => v.name)).to.deep.equal(['d', 'c']);
      expect(chooseVictims(workers, 3).map((v) => v.name)).to.deep.equal(['d', 'c', 'b']);
      expect(chooseVictims(workers, 0)).to.deep.equal([]);
      expect(chooseVictims([w('x', 1), w('y', 1)], 1).map((v) => v.name)).to.deep.equal(
        chooseVictims([w('y', 1), w('x', 1)], 1).map((v) => v.name),
      );
    });
  });

  describe('evacuationName', () => {
    it('is deterministic in the set of victims', () => {
      expect(evacuationName('p', ['a', 'b'])).to.equal(evacuationName('p', ['b', 'a']));
      expect(evacuationName('p', ['a'])).to.not.equal(evacuationName('p', ['b']));
      expect(evacuationName('p', ['a'])).to.match(/^p-scale-down-[0-9a-f]{10}$/);
    });
  });

  describe('planScale', () => {
    const workers = [w('p-1', 10), w('p-2', 3), w('p-3', 0)];
    it('scales up or stays without evacuation', () => {
      expect(planScale(input({ current: 2, desired: 4 }))).to.deep.equal({ action: 'set', replicas: 4, reason: 'ScaleUp', annotate: [] });
      expect(planScale(input({ current: 3, desired: 3 }))).to.deep.include({ action: 'set', reason: 'Steady' });
    });
    it('removes empty workers directly, marking them for deletion', () => {
      expect(planScale(input({ current: 3, desired: 2, workers }))).to.deep.equal({
        action: 'set',
        replicas: 2,
        reason: 'ScaleDown',
        annotate: ['p-3'],
      });
    });
    it('removes replicas without a pod first', () => {
      expect(planScale(input({ current: 4, desired: 3, workers }))).to.deep.include({ action: 'set', replicas: 3, annotate: [] });
    });
    it('evacuates busy workers before scaling down', () => {
      const plan = planScale(input({ current: 3, desired: 1, workers }));
      expect(plan).to.deep.equal({
        action: 'evacuate',
        replicas: 3,
        target: 1,
        victims: ['p-3', 'p-2'],
        migration: evacuationName('p', ['p-2', 'p-3']),
      });
    });
    it('waits for the evacuation, keeping replicas', () => {
      const plan = planScale(
        input({ current: 3, desired: 1, workers, evacuation: { name: 'm', phase: 'Running', pods: ['p-2', 'p-3'], createdAt: 990_000 } }),
      );
      expect(plan).to.deep.include({ action: 'wait', replicas: 3, target: 1 });
    });
    it('lowers replicas once the evacuation succeeded', () => {
      const plan = planScale(
        input({ current: 3, desired: 1, workers, evacuation: { name: 'm', phase: 'Succeeded', pods: ['p-2', 'p-3'], createdAt: 0 } }),
      );
      expect(plan).to.deep.equal({ action: 'complete', replicas: 1, migration: 'm', pods: ['p-2', 'p-3'] });
    });
    it('never lowers below desired after a success (desired rose meanwhile)', () => {
      const plan = planScale(
        input({ current: 3, desired: 2, workers, evacuation: { name: 'm', phase: 'Succeeded', pods: ['p-2', 'p-3'], createdAt: 0 } }),
      );
      expect(plan).to.deep.include({ action: 'complete', replicas: 2 });
    });
    it('keeps replicas after a failed evacuation and retries only after a while', () => {
      const failed = { name: 'm', phase: 'RolledBack' as const, pods: ['p-2'], createdAt: 0, completedAt: 950_000, reason: 'TargetGone' };
      const plan = planScale(input({ current: 3, desired: 2, workers, evacuation: failed }));
      expect(plan).to.deep.include({ action: 'blocked', replicas: 3, reason: 'EvacuationFailed', retry: false });
      if (plan.action === 'blocked') expect(plan.message).to.include('TargetGone');
      expect(planScale(input({ current: 3, desired: 2, workers, evacuation: failed, now: 950_000 + 120_000 }))).to.deep.include({
        retry: true,
      });
    });
    it('counts an evacuation past the drain deadline as failed', () => {
      const stuck = { name: 'm', phase: 'Pending' as const, pods: ['p-2'], createdAt: 0 };
      expect(planScale(input({ current: 3, desired: 2, workers, evacuation: stuck, now: 400_000 }))).to.deep.include({
        action: 'blocked',
        reason: 'EvacuationTimedOut',
        replicas: 3,
      });
    });
    it('ignores an evacuation whose pods are all gone (already consumed)', () => {
      const old = { name: 'm', phase: 'Succeeded' as const, pods: ['gone-1'], createdAt: 0 };
      expect(planScale(input({ current: 3, desired: 2, workers, evacuation: old }))).to.deep.include({ action: 'set', annotate: ['p-3'] });
    });
    it('scales to zero without a migration (nowhere to move to)', () => {
      expect(planScale(input({ current: 3, desired: 0, workers }))).to.deep.include({ action: 'set', replicas: 0 });
    });
  });
});
