// Two SessionPools of the same name in two namespaces, on one Redis Cluster with one key prefix:
// their identities (`<namespace>/<name>`) keep them apart. Neither sees, counts, moves, releases,
// sweeps or deletes the other's sessions, even with the same worker names in both. The delete
// and release steps are the operator's own (controller/pool/sessions.ts).
import { expect } from 'chai';
import { deleteAllSessions, readCounts, releaseWorker } from '../controller/pool/sessions.ts';
import { MigrationJournal } from '../migration/journal.ts';
import { summarize } from '../migration/planner.ts';
import { indexBucket, poolIdentity } from './keys.ts';
import type { RedisSessionStore } from './index.ts';
import type { SessionRecord } from './types.ts';
import { testStore, uniquePrefix } from './test-helpers.int.ts';

describe('store: two pools of the same name in two namespaces', () => {
  const prefix = uniquePrefix('isolation');
  const a = poolIdentity('team-a', 'sample');
  const b = poolIdentity('team-b', 'sample');
  // The same pod names in both namespaces: worker names alone do not tell the pools apart.
  const workers = ['sample-workers-0', 'sample-workers-1'];
  let store: RedisSessionStore;
  let sessionsA: SessionRecord[];
  let sessionsB: SessionRecord[];

  before(() => {
    ({ store } = testStore(prefix, { degraded: { enabled: false } }));
  });
  after(() => store.close());

  beforeEach(async () => {
    const make = async (pool: string, tag: string): Promise<SessionRecord[]> => {
      for (const worker of workers)
        await store.registerWorker({ pool, worker, endpoint: `${tag}-${worker}:8080`, draining: false }, 60_000);
      return Promise.all(
        Array.from({ length: 20 }, (_, i) => store.create({ pool, owner: workers[i % 2]!, data: { tag, i } })).concat(
          Array.from({ length: 4 }, () => store.create({ pool, data: { tag, unowned: true } })),
        ),
      );
    };
    sessionsA = await make(a, 'a');
    sessionsB = await make(b, 'b');
  });

  afterEach(async () => {
    for (const pool of [a, b]) await deleteAllSessions(store, pool);
  });

  /** Every session of B is there, untouched: data, owner, epoch and version as created. */
  async function expectBUntouched(): Promise<void> {
    for (const s of sessionsB) {
      const now = await store.get(s.id, { pool: b, touch: false });
      expect(now, `session ${s.id} of ${b}`).to.not.equal(null);
      expect(now).to.deep.include({ pool: b, owner: s.owner, epoch: s.epoch, version: s.version, data: s.data, movingBy: null });
    }
    expect(await store.count(b)).to.equal(sessionsB.length);
    expect((await store.listWorkers(b)).map((w) => [w.worker, w.draining])).to.deep.equal(workers.map((w) => [w, false]));
  }

  it('each sees and counts only its own sessions and workers', async () => {
    for (const [pool, mine, theirs] of [
      [a, sessionsA, sessionsB],
      [b, sessionsB, sessionsA],
    ] as const) {
      expect(await store.count(pool)).to.equal(24);
      const listed = (await store.list(pool, { limit: 1000 })).ids;
      expect([...listed].sort()).to.deep.equal(mine.map((s) => s.id).sort());
      for (const s of theirs) expect(listed).to.not.include(s.id);
      const counts = await readCounts(store, pool);
      expect(counts.active).to.equal(24);
      expect(Object.fromEntries(counts.byOwner)).to.deep.equal({ '': 4, [workers[0]!]: 10, [workers[1]!]: 10 });
      for (const worker of workers) {
        const owned = await store.listByOwner(pool, worker);
        expect([...owned].sort()).to.deep.equal(
          mine
            .filter((s) => s.owner === worker)
            .map((s) => s.id)
            .sort(),
        );
      }
      const registered = await store.listWorkers(pool);
      expect(registered.map((w) => w.pool)).to.deep.equal([pool, pool]);
      expect(registered.map((w) => w.endpoint.split('-')[0]).sort()).to.deep.equal(pool === a ? ['a', 'a'] : ['b', 'b']);
    }
    for (const s of sessionsA) expect((await store.get(s.id, { pool: a, touch: false }))?.pool).to.equal(a);
  });

  it("a read as one pool neither returns nor touches the other's session", async () => {
    // Granularity 0: every read that may touch does, so an untouched session shows it was not read as A's.
    const { store: eager } = testStore(prefix, { degraded: { enabled: false }, touchGranularityMs: 0 });
    try {
      const theirs = sessionsB[0]!;
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await eager.get(theirs.id, { pool: a })).to.equal(null);
      expect((await eager.get(theirs.id, { pool: b, touch: false }))?.lastAccessedAt).to.equal(theirs.lastAccessedAt);
      const asB = await eager.get(theirs.id, { pool: b });
      expect(asB?.pool).to.equal(b);
      expect(asB?.lastAccessedAt, 'read as its own pool it is touched').to.be.greaterThan(theirs.lastAccessedAt);
    } finally {
      await eager.close();
    }
  });

  it('the same id in both pools is two sessions, each under a key that names its pool', async () => {
    const id = sessionsB[0]!.id;
    const keys = store.core.keys;
    expect(keys.session(a, id)).to.equal(`${prefix}:s:{${a}|${id}}`);
    expect(keys.session(a, id)).to.not.equal(keys.session(b, id));
    // Nothing of A is stored under B's id until A imports one; then each pool has its own.
    expect(await store.core.redis.exists(keys.session(a, id))).to.equal(0);
    const imported = await store.importSession({ id, pool: a, data: { mine: 'a' }, version: 7, createdAt: 1 });
    expect(imported.created).to.equal(true);
    expect(await store.get(id, { pool: a, touch: false })).to.deep.include({ pool: a, version: 7, data: { mine: 'a' } });
    await store.delete(id, { pool: a });
    await expectBUntouched();
  });

  it("a migration of one pool cannot move, mark or journal over the other's sessions", async () => {
    const owned = sessionsB.filter((s) => s.owner === workers[0]);
    const moves = owned.map((s) => ({ sessionId: s.id, fromOwner: workers[0]!, fromEpoch: s.epoch, toOwner: workers[1]! }));
    // Pool A has no session of these ids: each key names its pool.
    const outcomes = await store.migrateOwners(a, moves, 'mig-of-a');
    expect(outcomes.map((o) => o.status)).to.deep.equal(owned.map(() => 'missing'));
    await store.setMoving(
      a,
      owned.map((s) => s.id),
      'mig-of-a',
    );
    expect(await store.moveOwners(a, moves)).to.deep.equal(owned.map((s) => ({ sessionId: s.id, status: 'missing' })));
    // Draining pool A's worker leaves B's same-named worker serving.
    await store.setWorkerDraining(a, workers[0]!, true);
    expect((await store.listWorkers(a)).find((w) => w.worker === workers[0])?.draining).to.equal(true);
    // The journals of both pools' migrations (even under one uid) are apart.
    const journalA = new MigrationJournal(store.core.redis, { prefix, pool: a });
    const journalB = new MigrationJournal(store.core.redis, { prefix, pool: b });
    const input = {
      uid: 'same-uid',
      kind: 'Evacuate' as const,
      onFailure: 'Rollback' as const,
      summary: summarize([]),
      batchCount: 0,
      deadlineAt: 0,
    };
    expect(await journalA.create({ ...input, pool: a })).to.equal(true);
    expect(await journalB.create({ ...input, pool: b })).to.equal(true, 'the same uid in the other pool is another journal');
    expect((await journalA.header('same-uid'))?.pool).to.equal(a);
    expect((await journalB.header('same-uid'))?.pool).to.equal(b);
    expect(journalA.keys('same-uid').header).to.not.equal(journalB.keys('same-uid').header);
    expect(await journalA.listActive()).to.deep.equal(['same-uid']);
    try {
      await journalA.create({ ...input, uid: 'other', pool: b });
      expect.fail('a journal of pool A took a migration of pool B');
    } catch (error) {
      expect((error as Error).message).to.match(/cannot hold a migration of pool/);
    }
    await journalA.remove('same-uid');
    expect(await journalB.header('same-uid')).to.not.equal(null);
    await journalB.remove('same-uid');
    await expectBUntouched();
  });

  it("releasing a dead worker and sweeping one pool leave the other's same-named worker and sessions alone", async () => {
    const released = await releaseWorker(store, a, workers[0]!);
    expect(released.released).to.equal(10);
    for (const s of sessionsA.filter((x) => x.owner === workers[0]))
      expect((await store.get(s.id, { pool: a, touch: false }))?.owner).to.equal(null);
    expect((await store.listWorkers(a)).map((w) => w.worker)).to.deep.equal([workers[1]]);
    await store.sweep(a);
    await expectBUntouched();
  });

  it("deleting one pool deletes only its own sessions, even when its index names the other's", async () => {
    // A stale entry in A's index naming a session of B (a crash, a foreign client): not A's to delete.
    const strayB = sessionsB[0]!;
    await store.core.redis.zadd(store.core.keys.poolIndex(a, indexBucket(strayB.id)), Date.now() + 600_000, strayB.id);
    const deleted = await deleteAllSessions(store, a);
    expect(deleted).to.equal(24);
    for (const s of sessionsA) expect(await store.get(s.id, { pool: a, touch: false })).to.equal(null);
    expect(await store.listWorkers(a)).to.deep.equal([]);
    await expectBUntouched();
  });
});
