import { expect } from 'chai';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { FencedError, SessionMovingError } from '../store/errors.ts';
import {
  MigrationExecutor,
  MigrationIncompleteError,
  MigrationInterruptedError,
  type ExecutorOptions,
  type MigrationProgress,
  type MigrationStep,
} from './executor.ts';
import { evacuateWorkers } from './evacuate.ts';
import { planEvacuate, planMigrate, type Plan } from './planner.ts';
import { MemorySessionStore } from '../store/testing/memory-store.ts';
import { MemoryJournal } from './testing/memory-journal.ts';

const POOL = 'pool-a';
const silent = pino({ level: 'silent' });

interface Setup {
  store: MemorySessionStore;
  journal: MemoryJournal;
  registry: Registry;
  source: string[];
  clock: { t: number };
  options: ExecutorOptions;
  progress: MigrationProgress[];
}

function setup(sessions = 100, targets = ['w1', 'w2', 'w3']): Setup {
  const store = new MemorySessionStore();
  const journal = new MemoryJournal();
  const registry = new Registry();
  const clock = { t: 1_000_000 };
  journal.now = () => clock.t;
  store.addWorker(POOL, 'w0');
  for (const t of targets) store.addWorker(POOL, t);
  const source = store.seed(POOL, 'w0', sessions, 5);
  const progress: MigrationProgress[] = [];
  const options: ExecutorOptions = {
    store,
    journal,
    registry,
    logger: silent,
    batchSize: 10,
    graceMs: 50,
    retryDelayMs: 1,
    now: () => clock.t,
    sleep: async (ms) => {
      clock.t += ms;
    },
    onProgress: (_uid, p) => {
      progress.push(p);
    },
  };
  return { store, journal, registry, source, clock, options, progress };
}

async function evacuationPlan(s: Setup): Promise<Plan> {
  const workers = await s.store.listWorkers(POOL);
  return planEvacuate({
    sources: new Map([['w0', await s.store.listByOwner(POOL, 'w0')]]),
    targets: workers.filter((w) => !w.draining && w.worker !== 'w0').map((w) => ({ name: w.worker })),
    targetLoads: await s.store.countByOwner(POOL),
  });
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>, series?: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const value = metric?.values.find(
    (v) =>
      (series === undefined || (v as { metricName?: string }).metricName === series) &&
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value ?? 0;
}

function expectNoMovingMarks(store: MemorySessionStore): void {
  expect([...store.sessions.values()].filter((s) => s.movingBy !== null).map((s) => s.id)).to.deep.equal([]);
}

function expectAllOn(store: MemorySessionStore, ids: string[], owner: string | ((o: string | null) => boolean)): void {
  for (const id of ids) {
    const o = store.peek(id)!.owner;
    if (typeof owner === 'string') expect(o, id).to.equal(owner);
    else expect(owner(o), `${id} on ${o}`).to.equal(true);
  }
}

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

  it('rolls back every moved session when a target unregisters mid-way; epochs keep growing', async () => {
    const s = setup(100);
    s.options.afterStep = async (step, index) => {
      if (step === 'moved' && index === 3) await s.store.unregisterWorker(POOL, 'w2');
    };
    const result = await new MigrationExecutor(s.options).run({ uid: 'm-rb', pool: POOL, plan: await evacuationPlan(s) });
    expect(result.phase).to.equal('RolledBack');
    expect(result.reason).to.equal('TargetGone');
    expect(result.progress.rolledBack).to.equal(40);
    expectAllOn(s.store, s.source, 'w0');
    const moved = new Set(s.store.ownerChanges.map((c) => c.sessionId));
    for (const id of s.source) expect(s.store.peek(id)!.epoch).to.equal(moved.has(id) ? 7 : 5);
    expectNoMovingMarks(s.store);
    expect((await s.journal.header('m-rb'))!).to.include({ phase: 'RolledBack', reason: 'TargetGone', rollbackReason: 'TargetGone' });
    expect(await metricValue(s.registry, 'spo_migration_failures_total', { pool: POOL, type: 'Evacuate', reason: 'TargetGone' })).to.equal(
      1,
    );
    expect(await metricValue(s.registry, 'spo_migration_phase', { migration: 'm-rb', phase: 'RolledBack' })).to.equal(1);
  });

  it('onFailure=Stop ends Failed and keeps moved sessions moved', async () => {
    const s = setup(50);
    s.options.afterStep = async (step, index) => {
      if (step === 'moved' && index === 1) await s.store.setWorkerDraining(POOL, 'w3', true);
    };
    const result = await new MigrationExecutor(s.options).run({
      uid: 'm-stop',
      pool: POOL,
      plan: await evacuationPlan(s),
      onFailure: 'Stop',
    });
    expect(result).to.include({ phase: 'Failed', reason: 'TargetGone' });
    expect(result.progress).to.include({ moved: 20, remaining: 30 });
    expect(s.store.ownersOf(POOL).get('w0')).to.equal(30);
    expectNoMovingMarks(s.store);
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

  it('a persistent store error in the middle of a batch rolls back, including the half-done batch', async () => {
    const s = setup(30);
    s.options.afterStep = (step, index) => {
      // Clearing the marks of batch 1 fails on every attempt (1 + 3 retries).
      if (step === 'owners-moved' && index === 1) s.store.failNext('setMoving', 4, () => new Error('CLUSTERDOWN'));
    };
    const result = await new MigrationExecutor({ ...s.options, storeRetries: 3 }).run({
      uid: 'm-err',
      pool: POOL,
      plan: await evacuationPlan(s),
    });
    expect(result).to.include({ phase: 'RolledBack', reason: 'StoreError' });
    expectAllOn(s.store, s.source, 'w0');
    expectNoMovingMarks(s.store);
    expect(result.progress.rolledBack).to.equal(20);
  });

  it('the overall deadline fails the migration and rolls back', async () => {
    const s = setup(100);
    const result = await new MigrationExecutor({ ...s.options, graceMs: 1000 }).run({
      uid: 'm-dl',
      pool: POOL,
      plan: await evacuationPlan(s),
      deadlineMs: 3500,
    });
    expect(result).to.include({ phase: 'RolledBack', reason: 'DeadlineExceeded' });
    expectAllOn(s.store, s.source, 'w0');
    expectNoMovingMarks(s.store);
  });

  it('rolls back unowned sessions to unowned', async () => {
    const s = setup(0);
    const free = s.store.seed(POOL, null, 5, 2);
    const plan = planMigrate({ sessions: free.map((id) => ({ id, owner: null })), target: 'w1', targets: [{ name: 'w1' }] });
    s.options.afterStep = async (step) => {
      if (step === 'moved') await s.store.unregisterWorker(POOL, 'w1');
    };
    const result = await new MigrationExecutor({ ...s.options, batchSize: 2 }).run({ uid: 'm-free', pool: POOL, plan });
    expect(result.phase).to.equal('RolledBack');
    expectAllOn(s.store, free, (o) => o === null);
    const moved = new Set(s.store.ownerChanges.map((c) => c.sessionId));
    expect(moved.size).to.equal(2);
    for (const id of free) expect(s.store.peek(id)!.epoch).to.equal(moved.has(id) ? 4 : 2);
  });

  const steps: MigrationStep[] = ['planned', 'frozen', 'owners-moved', 'moving-cleared', 'moved'];
  for (const crashStep of steps) {
    it(`resumes after a crash at step '${crashStep}' of batch 2 and moves every session exactly once`, async () => {
      const s = setup(50);
      const controller = new AbortController();
      const plan = await evacuationPlan(s);
      const crashing = new MigrationExecutor({
        ...s.options,
        signal: controller.signal,
        afterStep: (step, index) => {
          if (step === crashStep && index === 2) controller.abort();
        },
      });
      let crash: unknown;
      try {
        await crashing.run({ uid: 'm-crash', pool: POOL, plan });
      } catch (error) {
        crash = error;
      }
      expect(crash).to.be.instanceOf(MigrationInterruptedError);
      expect((await s.journal.header('m-crash'))!.phase).to.equal('Running');
      expect(await s.journal.listActive()).to.deep.equal(['m-crash']);
      const result = await new MigrationExecutor(s.options).resume('m-crash');
      expect(result.phase).to.equal('Succeeded');
      expect(result.progress).to.include({ moved: 50, remaining: 0, failed: 0 });
      expect(s.store.ownersOf(POOL).get('w0')).to.equal(undefined);
      expect(s.store.ownerChanges).to.have.length(50);
      expect(new Set(s.store.ownerChanges.map((c) => c.sessionId)).size).to.equal(50);
      expectNoMovingMarks(s.store);
      // A second resume (or run) of a finished migration changes nothing.
      const again = await new MigrationExecutor(s.options).run({ uid: 'm-crash', pool: POOL, plan });
      expect(again.phase).to.equal('Succeeded');
      expect(s.store.ownerChanges).to.have.length(50);
    });
  }

  it('resumes a rollback interrupted half-way and finishes it', async () => {
    const s = setup(60);
    const controller = new AbortController();
    let rolled = 0;
    const crashing = new MigrationExecutor({
      ...s.options,
      signal: controller.signal,
      afterStep: async (step, index) => {
        if (step === 'moved' && index === 3) await s.store.unregisterWorker(POOL, 'w1');
        if (step === 'rolledback' && ++rolled === 2) controller.abort();
      },
    });
    let crash: unknown;
    try {
      await crashing.run({ uid: 'm-rbc', pool: POOL, plan: await evacuationPlan(s) });
    } catch (error) {
      crash = error;
    }
    expect(crash).to.be.instanceOf(MigrationInterruptedError);
    expect((await s.journal.header('m-rbc'))!.rollbackReason).to.equal('TargetGone');
    const result = await new MigrationExecutor(s.options).resume('m-rbc');
    expect(result).to.include({ phase: 'RolledBack', reason: 'TargetGone' });
    expectAllOn(s.store, s.source, 'w0');
    expectNoMovingMarks(s.store);
    // 40 moved forward, each moved back exactly once.
    expect(s.store.ownerChanges.filter((c) => c.to === 'w0')).to.have.length(40);
  });

  it('a rollback that cannot reach the store leaves the journal for a later resume', async () => {
    const s = setup(20);
    s.options.afterStep = async (step, index) => {
      if (step === 'moved' && index === 0) s.store.failNext('listWorkers', 100);
      if (step === 'moved' && index === 0) s.store.failNext('setMoving', 100);
    };
    let error: unknown;
    try {
      await new MigrationExecutor(s.options).run({ uid: 'm-inc', pool: POOL, plan: await evacuationPlan(s) });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(MigrationIncompleteError);
    s.store.failNext('setMoving', 0);
    s.store.failNext('listWorkers', 0);
    const result = await new MigrationExecutor(s.options).resume('m-inc');
    expect(result.phase).to.equal('RolledBack');
    expectAllOn(s.store, s.source, 'w0');
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
