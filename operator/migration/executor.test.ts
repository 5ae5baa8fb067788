import { expect } from 'chai';
import { FencedError, SessionMovingError } from '../store/errors.ts';
import { MigrationExecutor } from './executor.ts';
import { evacuateWorkers } from './evacuate.ts';
import type { MemorySessionStore } from '../store/testing/memory-store.ts';
import { MemoryJournal } from './testing/memory-journal.ts';
import { POOL, evacuationPlan, expectAllOn, expectNoMovingMarks, metricValue, setup } from './executor-test-support.ts';

describe('migration executor', () => {
  it('evacuates every session with one fenced owner change each, clears marks, journals and reports progress', async () => {
    const s = setup(100);
    const executor = new MigrationExecutor(s.options);
    const result = await executor.run({ uid: 'm1', pool: POOL, plan: await evacuationPlan(s) });
    expect(result.phase).to.equal('Succeeded');
    expect(result.progress).to.include({ moved: 100, remaining: 0, failed: 0, expired: 0, batchesDone: 10, batchCount: 10 });
    expect(s.store.ownersOf(POOL)).to.deep.equal(
      new Map([
        ['w1', 34],
        ['w2', 33],
        ['w3', 33],
      ]),
    );
    expect(s.store.ownerChanges).to.have.length(100);
    for (const id of s.source) expect(s.store.peek(id)!.epoch).to.equal(6);
    expectNoMovingMarks(s.store);
    const header = (await s.journal.header('m1'))!;
    expect(header).to.include({ phase: 'Succeeded', moved: 100, failed: 0 });
    expect((await s.journal.batches('m1')).map((b) => b.state)).to.deep.equal(Array(10).fill('moved'));
    const batch0 = (await s.journal.batch('m1', 0))!;
    expect(batch0.sessions[0]).to.include({ from: 'w0', fromEpoch: 5, newEpoch: 6, result: 'moved' });
    expect(s.progress.map((p) => p.moved)).to.deep.equal([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(s.progress.at(-1)!.remaining).to.equal(0);
    expect(await metricValue(s.registry, 'spo_migration_sessions_moved_total', { pool: POOL, type: 'Evacuate' })).to.equal(100);
    expect(await metricValue(s.registry, 'spo_migration_phase', { migration: 'm1', phase: 'Succeeded' })).to.equal(1);
    expect(await metricValue(s.registry, 'spo_migration_phase', { migration: 'm1', phase: 'Running' })).to.equal(0);
    expect(
      await metricValue(
        s.registry,
        'spo_migration_duration_seconds',
        { type: 'Evacuate', result: 'Succeeded' },
        'spo_migration_duration_seconds_count',
      ),
    ).to.equal(1);
    expect(await s.journal.listActive()).to.deep.equal([]);
  });

  it('uses the batch store calls: one read, one mark and one move call per batch, no get and no clearing pass', async () => {
    const s = setup(100);
    const plan = await evacuationPlan(s);
    s.store.calls.clear();
    const result = await new MigrationExecutor(s.options).run({ uid: 'm-batch', pool: POOL, plan });
    expect(result.progress).to.include({ moved: 100, failed: 0 });
    expect(s.store.calls.get('readOwners')).to.equal(10);
    expect(s.store.calls.get('setMoving')).to.equal(10); // marks set; the move script cleared them
    expect(s.store.calls.get('moveOwners')).to.equal(10);
    expect(s.store.calls.get('get') ?? 0).to.equal(0);
    expectNoMovingMarks(s.store);
  });

  it('drives a store without readOwners/migrateOwners through get, moveOwners and a clearing pass', async () => {
    const s = setup(40);
    Object.assign(s.store, { readOwners: undefined, migrateOwners: undefined });
    const plan = await evacuationPlan(s);
    s.store.calls.clear();
    const result = await new MigrationExecutor(s.options).run({ uid: 'm-legacy', pool: POOL, plan });
    expect(result.progress).to.include({ moved: 40, failed: 0 });
    expect(s.store.calls.get('get')).to.equal(40);
    expect(s.store.calls.get('setMoving')).to.equal(8);
    expect(s.store.ownerChanges).to.have.length(40);
    expectNoMovingMarks(s.store);
  });

  it('writes the plan before the header: a start cut off before its header leaves no journal, and the next start writes the whole plan', async () => {
    const s = setup(30);
    const plan = await evacuationPlan(s);
    // A stale partial plan of an earlier attempt, then an operator killed before the header was created.
    await s.journal.savePlan('cut', [{ index: 7, moves: [] }]);
    const create = s.journal.create.bind(s.journal);
    s.journal.create = () => Promise.reject(new Error('operator killed'));
    const first = await new MigrationExecutor({ ...s.options, storeRetries: 0 })
      .start({ uid: 'cut', pool: POOL, plan })
      .catch((e: unknown) => e);
    expect(first).to.be.instanceOf(Error);
    expect(await s.journal.header('cut'), 'no header: the successor plans the round again').to.equal(null);
    s.journal.create = create;
    const executor = new MigrationExecutor(s.options);
    expect(await executor.start({ uid: 'cut', pool: POOL, plan })).to.equal(true);
    const saved = await s.journal.plan('cut');
    expect(saved.map((b) => b.index)).to.deep.equal([0, 1, 2]);
    expect((await s.journal.header('cut'))?.batchCount).to.equal(saved.length);
    expect(await executor.start({ uid: 'cut', pool: POOL, plan }), 'a journal that exists is left as it is').to.equal(false);
    const result = await executor.resume('cut');
    expect(result.phase).to.equal('Succeeded');
    expect(result.progress.moved).to.equal(30);
  });

  it('dry run plans and moves nothing', async () => {
    const s = setup(30);
    const plan = await evacuationPlan(s);
    s.store.calls.clear();
    const result = await new MigrationExecutor(s.options).run({ uid: 'dry', pool: POOL, plan, dryRun: true });
    expect(result).to.include({ phase: 'Succeeded', dryRun: true });
    expect(result.summary.totalSessions).to.equal(30);
    expect(result.progress.remaining).to.equal(30);
    expect(s.store.calls.size).to.equal(0);
    expect(s.journal.journals.size).to.equal(0);
    expectAllOn(s.store, s.source, 'w0');
  });

  it('freezes sessions while moving (fenced writes refused) and fences the old owner after', async () => {
    const s = setup(10);
    const victim = s.source[0]!;
    const seen: string[] = [];
    s.options.afterStep = async (step) => {
      if (step !== 'frozen') return;
      try {
        await s.store.mutate(victim, () => 1, { pool: POOL, fence: { epoch: 5, owner: 'w0' } });
      } catch (error) {
        seen.push((error as Error).constructor.name);
      }
    };
    await new MigrationExecutor(s.options).run({ uid: 'm-fence', pool: POOL, plan: await evacuationPlan(s) });
    expect(seen).to.deep.equal([SessionMovingError.name]);
    let late: unknown;
    try {
      await s.store.mutate(victim, () => 2, { pool: POOL, fence: { epoch: 5, owner: 'w0' } });
    } catch (error) {
      late = error;
    }
    expect(late).to.be.instanceOf(FencedError);
  });

  it('retries a conflict once when the session is still on its source; counts others as failed and expired', async () => {
    const s = setup(10);
    const [bumped, stolen, gone] = s.source as [string, string, string];
    let first = true;
    s.store.beforeCall = (method) => {
      if (method !== 'moveOwners' || !first) return;
      first = false;
      s.store.peek(bumped)!.epoch += 1; // same owner, newer epoch
      const st = s.store.peek(stolen)!;
      st.owner = 'w9';
      st.epoch += 1;
      s.store.drop(gone);
    };
    const result = await new MigrationExecutor(s.options).run({ uid: 'm-conf', pool: POOL, plan: await evacuationPlan(s) });
    expect(result.phase).to.equal('Succeeded');
    expect(result.progress).to.include({ moved: 8, failed: 1, expired: 1, remaining: 0 });
    expect(s.store.peek(bumped)!.owner).to.not.equal('w0');
    expect(s.store.peek(bumped)!.epoch).to.equal(7);
    expect(s.store.peek(stolen)!.owner).to.equal('w9');
    const entry = (await s.journal.batch('m-conf', 0))!;
    expect(entry.sessions.find((x) => x.id === stolen)!.result).to.equal('conflict');
    expect(entry.sessions.find((x) => x.id === gone)!.result).to.equal('missing');
  });

  it('counts a move that applied before a lost reply as moved (retry sees the target owner)', async () => {
    const s = setup(10);
    let n = 0;
    s.store.beforeCall = async (method, args) => {
      if (method === 'moveOwners' && n++ === 0) {
        // Apply the moves, then fail as if the reply was lost.
        s.store.beforeCall = undefined;
        await s.store.moveOwners(POOL, args[0] as Parameters<MemorySessionStore['moveOwners']>[1]);
        throw new Error('connection reset');
      }
    };
    const result = await new MigrationExecutor(s.options).run({ uid: 'm-lost', pool: POOL, plan: await evacuationPlan(s) });
    expect(result.phase).to.equal('Succeeded');
    expect(result.progress).to.include({ moved: 10, failed: 0 });
    expect(s.store.ownerChanges).to.have.length(10);
  });

  it('survives transient store errors by retrying', async () => {
    const s = setup(20);
    s.store.failNext('moveOwners', 2);
    s.store.failNext('setMoving', 1);
    const result = await new MigrationExecutor({ ...s.options, storeRetries: 3 }).run({
      uid: 'm-flaky',
      pool: POOL,
      plan: await evacuationPlan(s),
    });
    expect(result.phase).to.equal('Succeeded');
    expect(s.store.ownersOf(POOL).get('w0')).to.equal(undefined);
  });

  it('the memory journal ignores a repeated or backward transition (counters unchanged)', async () => {
    const j = new MemoryJournal();
    await j.create({
      uid: 'j',
      pool: POOL,
      kind: 'Evacuate',
      onFailure: 'Rollback',
      summary: { totalSessions: 1, moves: [], omittedMoves: 0 },
      batchCount: 1,
      deadlineAt: 0,
    });
    const entry = { index: 0, state: 'moved' as const, sessions: [] };
    expect(await j.transition('j', entry, { moved: 1 })).to.equal(true);
    expect(await j.transition('j', entry, { moved: 1 })).to.equal(false);
    expect(await j.transition('j', { ...entry, state: 'frozen' }, { moved: 1 })).to.equal(false);
    expect((await j.header('j'))!.moved).to.equal(1);
  });

  describe('evacuateWorkers', () => {
    it('marks the sources draining, moves only to non-draining workers, and repeats while new sessions appear', async () => {
      const s = setup(40, ['w1', 'w2', 'w3']);
      await s.store.setWorkerDraining(POOL, 'w3', true);
      let added: string[] = [];
      s.store.beforeCall = (method) => {
        if (method === 'moveOwners' && added.length === 0) added = s.store.seed(POOL, 'w0', 3); // a late session on the source
      };
      const result = await evacuateWorkers(s.store, POOL, ['w0'], { ...s.options, journal: s.journal, uid: 'ev' });
      expect(result.phase).to.equal('Succeeded');
      expect(result.rounds).to.have.length(2);
      expect(result.moved).to.equal(43);
      expect(s.store.workers.get(`${POOL}/w0`)!.draining).to.equal(true);
      expect(s.store.ownersOf(POOL).get('w0')).to.equal(undefined);
      expect(s.store.ownersOf(POOL).get('w3')).to.equal(undefined);
      expectAllOn(s.store, added, (o) => o === 'w1' || o === 'w2');
    });

    it('fails typed when there is nowhere to go', async () => {
      const s = setup(5, []);
      let error: unknown;
      try {
        await evacuateWorkers(s.store, POOL, ['w0'], { ...s.options, journal: s.journal });
      } catch (e) {
        error = e;
      }
      expect((error as { code?: string }).code).to.equal('NoTargets');
      expectAllOn(s.store, s.source, 'w0');
    });
  });
});
