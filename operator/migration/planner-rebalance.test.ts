// planRebalance and planRebalanceCounts: fair shares by weight, the tolerance, caps and minimal moves.
import { expect } from 'chai';
import { fairShares, planRebalance, planRebalanceCounts } from './planner.ts';
import { allIds, expectPlanError, ids, rng } from './planner-test-support.ts';

describe('migration planner: planRebalance', () => {
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
