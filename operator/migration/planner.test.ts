import { expect } from 'chai';
import {
  PlanError,
  fairShares,
  planEvacuate,
  planMigrate,
  planRebalance,
  planRebalanceCounts,
  summarize,
  toBatches,
  type Plan,
  type PlannedMove,
} from './planner.ts';

/** A small deterministic PRNG (mulberry32) so property failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
}

function counted(plan: Plan): Map<string, number> {
  const into = new Map<string, number>();
  for (const m of plan.moves) into.set(m.to, (into.get(m.to) ?? 0) + m.sessionIds.length);
  return into;
}

function allIds(moves: readonly PlannedMove[]): string[] {
  return moves.flatMap((m) => m.sessionIds);
}

function expectPlanError(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(PlanError);
    expect((error as PlanError).code).to.equal(code);
    return;
  }
  expect.fail(`expected PlanError ${code}`);
}

describe('migration planner', () => {
  describe('planEvacuate', () => {
    it('spreads the sessions of one source evenly over empty targets', () => {
      const plan = planEvacuate({ sources: new Map([['w0', ids('s', 9)]]), targets: [{ name: 'w1' }, { name: 'w2' }, { name: 'w3' }] });
      expect(plan.kind).to.equal('Evacuate');
      expect([...counted(plan).values()]).to.deep.equal([3, 3, 3]);
      expect(plan.summary.totalSessions).to.equal(9);
      expect(plan.moves.every((m) => m.from === 'w0')).to.equal(true);
    });

    it('fills the emptiest target first', () => {
      const plan = planEvacuate({
        sources: new Map([['w0', ids('s', 6)]]),
        targets: [{ name: 'w1' }, { name: 'w2' }],
        targetLoads: new Map([
          ['w1', 10],
          ['w2', 4],
        ]),
      });
      // w2 gets 6 (reaching 10) before w1 gets anything.
      expect(counted(plan).get('w2')).to.equal(6);
      expect(counted(plan).get('w1')).to.equal(undefined);
    });

    it('levels loads and then fills alternately', () => {
      const plan = planEvacuate({
        sources: new Map([['w0', ids('s', 8)]]),
        targets: [{ name: 'a' }, { name: 'b' }],
        targetLoads: new Map([['a', 2]]),
      });
      expect(counted(plan).get('a')).to.equal(3);
      expect(counted(plan).get('b')).to.equal(5);
    });

    it('respects weights', () => {
      const plan = planEvacuate({
        sources: new Map([['w0', ids('s', 300)]]),
        targets: [
          { name: 'big', weight: 2 },
          { name: 'small', weight: 1 },
        ],
      });
      expect(counted(plan).get('big')).to.equal(200);
      expect(counted(plan).get('small')).to.equal(100);
    });

    it('never moves to a source, even when a source is listed as a target', () => {
      const plan = planEvacuate({
        sources: new Map([
          ['w0', ids('a', 5)],
          ['w1', ids('b', 5)],
        ]),
        targets: [{ name: 'w0' }, { name: 'w1' }, { name: 'w2' }],
      });
      expect(plan.moves.every((m) => m.to === 'w2')).to.equal(true);
      expect(plan.summary.totalSessions).to.equal(10);
    });

    it('fails typed when no target is left', () => {
      expectPlanError(() => planEvacuate({ sources: new Map([['w0', ['x']]]), targets: [{ name: 'w0' }] }), 'NoTargets');
      expectPlanError(() => planEvacuate({ sources: new Map([['w0', ['x']]]), targets: [] }), 'NoTargets');
      expectPlanError(() => planEvacuate({ sources: new Map(), targets: [{ name: 'w1' }] }), 'NoSources');
    });

    it('rejects bad weights and a session listed twice', () => {
      expectPlanError(() => planEvacuate({ sources: new Map([['w0', ['x']]]), targets: [{ name: 'w1', weight: 0 }] }), 'InvalidWeight');
      expectPlanError(
        () => planEvacuate({ sources: new Map([['w0', ['x']]]), targets: [{ name: 'w1', weight: Number.NaN }] }),
        'InvalidWeight',
      );
      expectPlanError(
        () =>
          planEvacuate({
            sources: new Map([
              ['w0', ['x']],
              ['w1', ['x']],
            ]),
            targets: [{ name: 'w2' }],
          }),
        'DuplicateSession',
      );
    });

    it('an empty source gives an empty plan', () => {
      const plan = planEvacuate({ sources: new Map([['w0', []]]), targets: [{ name: 'w1' }] });
      expect(plan.moves).to.deep.equal([]);
      expect(plan.summary.totalSessions).to.equal(0);
    });

    it('property: every session assigned exactly once, never to a source, final loads within one of fair (weights 1)', () => {
      for (let seed = 1; seed <= 200; seed++) {
        const r = rng(seed);
        const workers = Array.from({ length: 2 + Math.floor(r() * 8) }, (_, i) => `w${i}`);
        const sourceCount = 1 + Math.floor(r() * (workers.length - 1));
        const sourceNames = workers.slice(0, sourceCount);
        const sources = new Map(sourceNames.map((w) => [w, ids(w, Math.floor(r() * 50))]));
        const loads = new Map(workers.slice(sourceCount).map((w) => [w, Math.floor(r() * 20)]));
        const targets = workers.map((name) => ({ name }));
        const plan = planEvacuate({ sources, targets, targetLoads: loads });
        const moved = allIds(plan.moves);
        const expected = [...sources.values()].flat();
        expect(moved.length).to.equal(expected.length);
        expect(new Set(moved)).to.deep.equal(new Set(expected));
        for (const m of plan.moves) {
          expect(sourceNames).to.not.include(m.to);
          for (const id of m.sessionIds) expect(sources.get(m.from)).to.include(id);
        }
        // Water-filling: a target that received sessions ends at most one above the least loaded target.
        const final = new Map(loads);
        for (const [t, n] of counted(plan)) final.set(t, (final.get(t) ?? 0) + n);
        const min = Math.min(...final.values());
        for (const [t, n] of counted(plan)) if (n > 0) expect(final.get(t)!).to.be.at.most(min + 1);
      }
    });
  });

  describe('planMigrate', () => {
    const targets = [{ name: 'w1' }, { name: 'w2' }];
    it('moves named sessions to the target, grouped by owner, skipping those already there', () => {
      const plan = planMigrate({
        sessions: [
          { id: 'a', owner: 'w1' },
          { id: 'b', owner: 'w1' },
          { id: 'c', owner: 'w2' },
          { id: 'd', owner: null },
        ],
        target: 'w2',
        targets,
      });
      expect(plan.moves).to.deep.equal([
        { from: '', to: 'w2', sessionIds: ['d'] },
        { from: 'w1', to: 'w2', sessionIds: ['a', 'b'] },
      ]);
      expect(plan.alreadyOnTarget).to.deep.equal(['c']);
      expect(plan.summary.totalSessions).to.equal(3);
    });

    it('fails typed on an unknown target, no targets, or a duplicate', () => {
      expectPlanError(() => planMigrate({ sessions: [{ id: 'a', owner: 'w1' }], target: 'w9', targets }), 'UnknownTarget');
      expectPlanError(() => planMigrate({ sessions: [{ id: 'a', owner: 'w1' }], target: 'w9', targets: [] }), 'NoTargets');
      expectPlanError(
        () =>
          planMigrate({
            sessions: [
              { id: 'a', owner: 'w1' },
              { id: 'a', owner: 'w1' },
            ],
            target: 'w2',
            targets,
          }),
        'DuplicateSession',
      );
    });
  });

  describe('fairShares', () => {
    it('apportions exactly the total', () => {
      expect([
        ...fairShares(10, [
          { name: 'a', weight: 1 },
          { name: 'b', weight: 1 },
          { name: 'c', weight: 1 },
        ]).values(),
      ]).to.deep.equal([4, 3, 3]);
      expect([
        ...fairShares(7, [
          { name: 'a', weight: 3 },
          { name: 'b', weight: 1 },
        ]).values(),
      ]).to.deep.equal([5, 2]);
    });
  });

  describe('planRebalance', () => {
    const three = [{ name: 'a' }, { name: 'b' }, { name: 'c' }];
    it('does nothing when already within tolerance', () => {
      const counts = new Map([
        ['a', 100],
        ['b', 95],
        ['c', 105],
      ]);
      expect(planRebalanceCounts(counts, three, { tolerance: 0.1, maxMovesPerRound: 1000 })).to.deep.equal([]);
    });

    it('moves the minimum from over- to under-loaded workers', () => {
      const counts = new Map([
        ['a', 300],
        ['b', 0],
        ['c', 0],
      ]);
      const moves = planRebalanceCounts(counts, three, { tolerance: 0, maxMovesPerRound: 1000 });
      expect(moves).to.deep.equal([
        { from: 'a', to: 'b', count: 100 },
        { from: 'a', to: 'c', count: 100 },
      ]);
    });

    it('with tolerance moves only what brings every worker within it', () => {
      // ideal 100 each; c at 70 must reach 90 (low bound): 20 moves; b (over its high bound) gives
      // its 10 first, then a and b level down together.
      const counts = new Map([
        ['a', 110],
        ['b', 120],
        ['c', 70],
      ]);
      const moves = planRebalanceCounts(counts, three, { tolerance: 0.1, maxMovesPerRound: 1000 });
      expect(moves.reduce((s, m) => s + m.count, 0)).to.equal(20);
      expect(moves.every((m) => m.to === 'c')).to.equal(true);
      expect(moves.find((m) => m.from === 'b')!.count).to.equal(15);
      expect(moves.find((m) => m.from === 'a')!.count).to.equal(5);
    });

    it('caps moves per round', () => {
      const counts = new Map([
        ['a', 1000],
        ['b', 0],
        ['c', 0],
      ]);
      const moves = planRebalanceCounts(counts, three, { tolerance: 0, maxMovesPerRound: 50 });
      expect(moves.reduce((s, m) => s + m.count, 0)).to.equal(50);
      // The cap is shared between the under-loaded workers, not given to one.
      expect(moves.map((m) => m.count)).to.deep.equal([25, 25]);
    });

    it('respects weights', () => {
      const counts = new Map([
        ['a', 0],
        ['b', 300],
      ]);
      const moves = planRebalanceCounts(
        counts,
        [
          { name: 'a', weight: 2 },
          { name: 'b', weight: 1 },
        ],
        { tolerance: 0, maxMovesPerRound: 1000 },
      );
      expect(moves).to.deep.equal([{ from: 'b', to: 'a', count: 200 }]);
    });

    it('ignores workers that are not ready and picks real session ids', () => {
      const plan = planRebalance({
        sessionsByWorker: new Map([
          ['a', ids('a', 6)],
          ['b', []],
          ['draining', ids('d', 50)],
        ]),
        workers: [{ name: 'a' }, { name: 'b' }],
        tolerance: 0,
        maxMovesPerRound: 100,
      });
      expect(plan.moves).to.deep.equal([{ from: 'a', to: 'b', sessionIds: ['a-0', 'a-1', 'a-2'] }]);
    });

    it('rejects bad options', () => {
      expectPlanError(() => planRebalanceCounts(new Map(), [{ name: 'a' }], { tolerance: -1, maxMovesPerRound: 1 }), 'InvalidOption');
      expectPlanError(() => planRebalanceCounts(new Map(), [{ name: 'a' }], { maxMovesPerRound: 1.5 }), 'InvalidOption');
      expectPlanError(() => planRebalanceCounts(new Map(), [], { maxMovesPerRound: 1 }), 'NoTargets');
    });

    it('property: caps, direction, minimality and the tolerance hold for random inputs', () => {
      for (let seed = 1; seed <= 300; seed++) {
        const r = rng(seed * 7919);
        const n = 2 + Math.floor(r() * 7);
        const workers = Array.from({ length: n }, (_, i) => ({ name: `w${i}`, weight: r() < 0.3 ? 1 + Math.floor(r() * 3) : 1 }));
        const sessionsByWorker = new Map(workers.map((w) => [w.name, ids(w.name, Math.floor(r() * (r() < 0.2 ? 500 : 60)))]));
        const tolerance = [0, 0.05, 0.1, 0.25][Math.floor(r() * 4)]!;
        const cap = r() < 0.5 ? 1_000_000 : Math.floor(r() * 40);
        const plan = planRebalance({ sessionsByWorker, workers, tolerance, maxMovesPerRound: cap });
        const moved = allIds(plan.moves);
        expect(new Set(moved).size, 'each session moved at most once').to.equal(moved.length);
        expect(moved.length).to.be.at.most(cap);
        const counts = new Map([...sessionsByWorker].map(([w, list]) => [w, list.length]));
        const total = [...counts.values()].reduce((s, c) => s + c, 0);
        const sumW = workers.reduce((s, w) => s + w.weight, 0);
        const ideal = new Map(workers.map((w) => [w.name, (total * w.weight) / sumW]));
        const senders = new Set(plan.moves.map((m) => m.from));
        const receivers = new Set(plan.moves.map((m) => m.to));
        for (const m of plan.moves) {
          expect(m.from).to.not.equal(m.to);
          for (const id of m.sessionIds) expect(sessionsByWorker.get(m.from)).to.include(id);
        }
        for (const s of senders) {
          expect(counts.get(s)!, 'senders are over their ideal').to.be.above(ideal.get(s)!);
          expect(receivers.has(s), 'no worker both sends and receives').to.equal(false);
        }
        for (const t of receivers) expect(counts.get(t)!, 'receivers are under their ideal').to.be.below(ideal.get(t)!);
        const final = new Map(counts);
        for (const m of plan.moves) {
          final.set(m.from, final.get(m.from)! - m.sessionIds.length);
          final.set(m.to, final.get(m.to)! + m.sessionIds.length);
        }
        const shares = fairShares(total, workers);
        let mustOut = 0;
        let mustIn = 0;
        for (const w of workers) {
          const hi = Math.max(shares.get(w.name)!, Math.floor(ideal.get(w.name)! * (1 + tolerance)));
          const lo = Math.min(shares.get(w.name)!, Math.ceil(ideal.get(w.name)! * (1 - tolerance)));
          mustOut += Math.max(0, counts.get(w.name)! - hi);
          mustIn += Math.max(0, lo - counts.get(w.name)!);
          if (moved.length < cap) {
            // Uncapped: every worker ends within tolerance.
            expect(final.get(w.name)!, `seed ${seed} ${w.name} high`).to.be.at.most(hi);
            expect(final.get(w.name)!, `seed ${seed} ${w.name} low`).to.be.at.least(lo);
          }
        }
        // Minimal: no more moves than the larger of what must leave and what must arrive.
        expect(moved.length).to.equal(Math.min(cap, Math.max(mustOut, mustIn)));
      }
    });
  });

  describe('summarize and toBatches', () => {
    it('bounds the summary list and reports what it left out', () => {
      const moves = Array.from({ length: 10 }, (_, i) => ({ from: `f${i}`, to: 't', sessionIds: ids(`f${i}`, i + 1) }));
      const summary = summarize(moves, 3);
      expect(summary.totalSessions).to.equal(55);
      expect(summary.moves.map((m) => m.sessions)).to.deep.equal([10, 9, 8]);
      expect(summary.omittedMoves).to.equal(7);
    });

    it('cuts batches of at most N, covering every session once, interleaving pairs', () => {
      const moves = [
        { from: 'w0', to: 'a', sessionIds: ids('x', 50) },
        { from: 'w0', to: 'b', sessionIds: ids('y', 50) },
      ];
      const batches = toBatches(moves, 10);
      expect(batches).to.have.length(10);
      expect(batches.map((b) => b.index)).to.deep.equal([...Array(10).keys()]);
      expect(batches[0]!.moves.map((m) => m.to)).to.deep.equal(['a', 'b']);
      const all = batches.flatMap((b) => allIds(b.moves));
      expect(all.length).to.equal(100);
      expect(new Set(all).size).to.equal(100);
    });

    it('property: batches partition the plan and never exceed the size', () => {
      for (let seed = 1; seed <= 100; seed++) {
        const r = rng(seed + 1000);
        const moves = Array.from({ length: 1 + Math.floor(r() * 6) }, (_, i) => ({
          from: `f${i % 2}`,
          to: `t${i}`,
          sessionIds: ids(`m${i}`, Math.floor(r() * 80)),
        }));
        const size = 1 + Math.floor(r() * 30);
        const batches = toBatches(moves, size);
        const all = batches.flatMap((b) => allIds(b.moves));
        expect(all.length).to.equal(allIds(moves).length);
        expect(new Set(all)).to.deep.equal(new Set(allIds(moves)));
        for (const b of batches) {
          const n = allIds(b.moves).length;
          expect(n).to.be.within(1, size);
          for (const m of b.moves) {
            const source = moves.find((x) => x.from === m.from && x.to === m.to)!;
            for (const id of m.sessionIds) expect(source.sessionIds).to.include(id);
          }
        }
      }
    });

    it('rejects a bad batch size', () => {
      expectPlanError(() => toBatches([], 0), 'InvalidOption');
    });
  });
});
