import { expect } from 'chai';
import { fairShares, planEvacuate, planMigrate, summarize, toBatches } from './planner.ts';
import { allIds, counted, expectPlanError, ids, rng } from './planner-test-support.ts';

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
