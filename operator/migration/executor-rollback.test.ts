// The executor's rollbacks: a target gone mid-way, onFailure=Stop, a persistent store error, the deadline,
// unowned sessions, and a rollback resumed or cut off from the store. Setup in executor-test-support.ts.
import { expect } from 'chai';
import { MigrationExecutor, MigrationIncompleteError, MigrationInterruptedError, type MigrationStep } from './executor.ts';
import { planMigrate } from './planner.ts';
import { POOL, evacuationPlan, expectAllOn, expectNoMovingMarks, metricValue, setup } from './executor-test-support.ts';

describe('migration executor: rollback', () => {
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
});
