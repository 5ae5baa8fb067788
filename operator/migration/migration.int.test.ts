// The migration engine on the real Redis Cluster with the real store: evacuation under live
// fenced writes, a crash and resume, a rollback, a master failover, and the journal's rules.
import { expect } from 'chai';
import { failOverMaster, redisRoles, restartRedisNode, waitForClusterOk, waitForReplicasInSync } from '../../e2e/harness/redis-cluster.ts';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import type { SessionStore } from '../store/types.ts';
import type { RedisSessionStore } from '../store/index.ts';
import { addToOwnerIndexes } from '../store/indexes.ts';
import { MigrationExecutor, MigrationInterruptedError, type ExecutorOptions } from './executor.ts';
import { evacuateWorkers } from './evacuate.ts';
import { planEvacuate, type Plan } from './planner.ts';
import {
  createOwned,
  migrationEnv,
  silentLogger,
  startWriters,
  uniqueName,
  type MigrationEnv,
  type WriterStats,
} from './testing/int-env.ts';

const TARGETS = ['w1', 'w2', 'w3'];

async function registerWorkers(store: SessionStore, pool: string, names: string[]): Promise<void> {
  for (const worker of names) await store.registerWorker({ pool, worker, endpoint: `${worker}:8080`, draining: false }, 600_000);
}

async function planFrom(store: SessionStore, pool: string, source: string): Promise<Plan> {
  const workers = await store.listWorkers(pool);
  return planEvacuate({
    sources: new Map([[source, await store.listByOwner(pool, source)]]),
    targets: workers.filter((w) => !w.draining && w.worker !== source).map((w) => ({ name: w.worker })),
    targetLoads: await store.countByOwner(pool),
  });
}

/** Every invariant the migration must keep, read back from Redis. */
async function expectConsistent(
  env: MigrationEnv,
  pool: string,
  ids: string[],
  stats: WriterStats | null,
  allowedOwners: string[],
): Promise<Map<string, string | null>> {
  const owners = new Map<string, string | null>();
  const records = await Promise.all(ids.map((id) => env.store.get(id, { pool, touch: false })));
  let lost = 0;
  let moving = 0;
  let lostWrites = 0;
  records.forEach((record, i) => {
    const id = ids[i]!;
    if (!record) {
      lost++;
      return;
    }
    owners.set(id, record.owner);
    if (record.movingBy) moving++;
    if (stats) {
      const n = (record.data as { n: number }).n;
      const acked = stats.acked.get(id) ?? 0;
      const uncertain = stats.uncertain.get(id) ?? 0;
      if (n < acked || n > acked + uncertain) lostWrites++;
    }
  });
  expect(lost, 'sessions lost').to.equal(0);
  expect(lostWrites, 'sessions whose data disagrees with the acknowledged writes').to.equal(0);
  expect(moving, 'sessions left with a moving mark').to.equal(0);
  expect(await env.store.count(pool)).to.equal(ids.length);
  // The owner indexes agree with the sessions: each session in exactly its owner's index.
  const indexed = new Map<string, string[]>();
  for (const worker of ['w0', ...TARGETS]) {
    for (const id of await env.store.listByOwner(pool, worker)) indexed.set(id, [...(indexed.get(id) ?? []), worker]);
  }
  let twoOwners = 0;
  let wrongIndex = 0;
  for (const [id, owner] of owners) {
    const inIndex = indexed.get(id) ?? [];
    if (inIndex.length > 1) twoOwners++;
    if (inIndex.length !== 1 || inIndex[0] !== owner) wrongIndex++;
    expect(allowedOwners).to.include(owner);
  }
  expect(twoOwners, 'sessions in two owner indexes').to.equal(0);
  expect(wrongIndex, 'sessions whose owner index disagrees with their owner').to.equal(0);
  return owners;
}

describe('migration engine (integration)', function () {
  this.timeout(120_000);
  let env: MigrationEnv;
  let pool: string;

  beforeEach(async () => {
    env = migrationEnv(redisTestEnv().endpoints);
    pool = uniqueName('mig');
    await registerWorkers(env.store, pool, ['w0', ...TARGETS]);
  });

  afterEach(async () => {
    await env.close();
  });

  function options(extra: Partial<ExecutorOptions> = {}): ExecutorOptions {
    return { store: env.store, journal: env.journal, registry: env.registry, logger: silentLogger, batchSize: 200, graceMs: 20, ...extra };
  }

  it('evacuates 2,000 sessions under concurrent fenced writers: nothing lost, one owner each', async () => {
    const ids = await createOwned(env.store, pool, 'w0', 2000);
    const writers = startWriters(env.store, pool, ids, 8);
    await new Promise((r) => setTimeout(r, 200));
    const result = await evacuateWorkers(env.store, pool, ['w0'], { ...options(), uid: uniqueName('ev') });
    await new Promise((r) => setTimeout(r, 200));
    const stats = await writers.stop();
    expect(result.phase).to.equal('Succeeded');
    expect(result.moved).to.equal(2000);
    expect(stats.writes).to.be.above(100);
    const owners = await expectConsistent(env, pool, ids, stats, TARGETS);
    const counts = new Map<string, number>();
    for (const owner of owners.values()) counts.set(owner!, (counts.get(owner!) ?? 0) + 1);
    for (const t of TARGETS) expect(counts.get(t)).to.be.within(600, 734);
    expect((await env.store.listWorkers(pool)).find((w) => w.worker === 'w0')!.draining).to.equal(true);
  });

  it('evacuates two sources whose owner indexes both name a session (a move stopped before its index step)', async () => {
    const ofW0 = await createOwned(env.store, pool, 'w0', 30);
    const ofW1 = await createOwned(env.store, pool, 'w1', 30);
    // What a move from w1 to w0 leaves when it stops between its compare-and-swap and its index removal
    // (an operator killed mid-batch): w1's index still names 10 of w0's sessions until the sweep's audit.
    const core = (env.store as RedisSessionStore).core;
    await Promise.all(
      addToOwnerIndexes(
        core,
        pool,
        ofW0.slice(0, 10).map((id) => ({ owner: 'w1', id })),
      ),
    );
    const result = await evacuateWorkers(env.store, pool, ['w0', 'w1'], { ...options(), uid: uniqueName('ev-shared') });
    expect(result.phase, result.reason).to.equal('Succeeded');
    expect(result.moved).to.equal(60);
    const records = await Promise.all([...ofW0, ...ofW1].map((id) => env.store.get(id, { pool, touch: false })));
    expect(records.filter((r) => r?.owner !== 'w2' && r?.owner !== 'w3')).to.deep.equal([]);
  });

  it('a crash after batch k resumes from the journal and completes', async () => {
    const ids = await createOwned(env.store, pool, 'w0', 1000);
    const writers = startWriters(env.store, pool, ids, 4);
    const uid = uniqueName('crash');
    const plan = await planFrom(env.store, pool, 'w0');
    const controller = new AbortController();
    let crash: unknown;
    try {
      await new MigrationExecutor(
        options({
          signal: controller.signal,
          afterStep: (step, index) => {
            if (step === 'owners-moved' && index === 2) controller.abort();
          },
        }),
      ).run({ uid, pool, plan });
    } catch (error) {
      crash = error;
    }
    expect(crash).to.be.instanceOf(MigrationInterruptedError);
    expect(await env.journal.listActive()).to.include(uid);
    expect((await env.journal.batch(uid, 2))!.state).to.equal('frozen');
    const result = await new MigrationExecutor(options()).resume(uid);
    const stats = await writers.stop();
    expect(result.phase).to.equal('Succeeded');
    expect(result.progress).to.include({ moved: 1000, remaining: 0 });
    await expectConsistent(env, pool, ids, stats, TARGETS);
    expect(await env.journal.listActive()).to.not.include(uid);
    expect(await env.redis.ttl(env.journal.keys(uid).header)).to.be.within(7 * 24 * 3600 - 60, 7 * 24 * 3600);
  });

  it('rolls back to every previous owner when a target unregisters mid-way', async () => {
    const ids = await createOwned(env.store, pool, 'w0', 1000);
    const epochs = new Map((await Promise.all(ids.map((id) => env.store.get(id, { pool, touch: false })))).map((r) => [r!.id, r!.epoch]));
    const writers = startWriters(env.store, pool, ids, 4);
    const uid = uniqueName('rb');
    const result = await new MigrationExecutor(
      options({
        afterStep: async (step, index) => {
          if (step === 'moved' && index === 2) await env.store.unregisterWorker(pool, 'w2');
        },
      }),
    ).run({ uid, pool, plan: await planFrom(env.store, pool, 'w0') });
    const stats = await writers.stop();
    expect(result).to.include({ phase: 'RolledBack', reason: 'TargetGone' });
    expect(result.progress.rolledBack).to.equal(600);
    await expectConsistent(env, pool, ids, stats, ['w0']);
    // Epochs never shrink: moved-and-back sessions are two epochs further.
    const after = await Promise.all(ids.map((id) => env.store.get(id, { pool, touch: false })));
    const grown = after.filter((r) => r!.epoch === epochs.get(r!.id)! + 2).length;
    expect(grown).to.equal(600);
    expect(after.every((r) => r!.epoch >= epochs.get(r!.id)!)).to.equal(true);
  });

  it('a master failover mid-migration still ends Succeeded or RolledBack with nothing lost', async () => {
    const { state } = redisTestEnv();
    const ids = await createOwned(env.store, pool, 'w0', 1500);
    const writers = startWriters(env.store, pool, ids, 4);
    const uid = uniqueName('fo');
    const roles = await redisRoles(state);
    const victim = roles.find((r) => r.role === 'master')!.index;
    let failover: Promise<number> | undefined;
    try {
      const result = await new MigrationExecutor(
        options({
          storeRetries: 12,
          retryDelayMs: 250,
          batchSize: 100,
          afterStep: (step, index) => {
            if (step === 'moved' && index === 3 && !failover) failover = failOverMaster(state, victim);
          },
        }),
      ).run({ uid, pool, plan: await planFrom(env.store, pool, 'w0'), deadlineMs: 90_000 });
      await failover;
      const stats = await writers.stop();
      expect(['Succeeded', 'RolledBack']).to.include(result.phase);
      await expectConsistent(env, pool, ids, stats, result.phase === 'Succeeded' ? TARGETS : ['w0']);
    } finally {
      await writers.stop();
      if (failover) await failover.catch(() => undefined);
      await restartRedisNode(state, victim);
      await waitForClusterOk(state);
      await waitForReplicasInSync(state);
    }
  });

  it('journal: a transition applied twice changes nothing, phases end with a TTL', async () => {
    const uid = uniqueName('j');
    const j = env.journal;
    expect(
      await j.create({
        uid,
        pool,
        kind: 'Migrate',
        onFailure: 'Stop',
        summary: { totalSessions: 2, moves: [], omittedMoves: 0 },
        batchCount: 1,
        deadlineAt: 0,
      }),
    ).to.equal(true);
    expect(
      await j.create({
        uid,
        pool,
        kind: 'Migrate',
        onFailure: 'Stop',
        summary: { totalSessions: 2, moves: [], omittedMoves: 0 },
        batchCount: 1,
        deadlineAt: 0,
      }),
    ).to.equal(false);
    const sessions = [{ id: 'a', from: 'w0', fromEpoch: 1, to: 'w1', newEpoch: 2, result: 'moved' as const }];
    expect(await j.transition(uid, { index: 0, state: 'planned', sessions })).to.equal(true);
    expect(await j.transition(uid, { index: 0, state: 'moved', sessions }, { moved: 1 })).to.equal(true);
    expect(await j.transition(uid, { index: 0, state: 'moved', sessions }, { moved: 1 })).to.equal(false);
    expect(await j.transition(uid, { index: 0, state: 'frozen', sessions }, { moved: 1 })).to.equal(false);
    expect((await j.header(uid))!.moved).to.equal(1);
    expect((await j.batch(uid, 0))!.sessions[0]).to.deep.equal(sessions[0]);
    expect(await j.ttlOf(uid)).to.equal(-1);
    expect(await j.setPhase(uid, 'Succeeded')).to.equal(true);
    expect(await j.setPhase(uid, 'Failed', 'late')).to.equal(false);
    expect((await j.header(uid))!.phase).to.equal('Succeeded');
    expect(await j.ttlOf(uid)).to.be.above(6 * 24 * 3600);
    expect(await j.listActive()).to.not.include(uid);
    await j.remove(uid);
    expect(await j.header(uid)).to.equal(null);
  });
});
