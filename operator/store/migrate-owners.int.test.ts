import { expect } from 'chai';
import { H } from './codec.ts';
import { FencedError, SessionMovingError, newSessionId, type RedisSessionStore } from './index.ts';
import { scripts } from './lua.ts';
import { expectRejected, rewriteStored, testStore, uniquePrefix } from './test-helpers.int.ts';
import { indexBucket } from './keys.ts';
import { leaseIndexMembers } from './test-helpers.int.ts';
import { addToOwnerIndexes } from './indexes.ts';

describe('store: batch owner reads and migration moves', () => {
  const prefix = uniquePrefix('migrate');
  let store: RedisSessionStore;
  before(() => {
    // No audit grace: the sweep after the one that saw an entry stale removes it (owner-audit.ts).
    ({ store } = testStore(prefix, { sweepAuditGraceMs: 0 }));
  });
  after(() => store.close());

  it('readOwners reads owner, epoch, mark and pool of many sessions, leaves absent ones out and quarantines a corrupted one', async () => {
    const pool = 'pool-read';
    const owned = await Promise.all(Array.from({ length: 20 }, () => store.create({ pool, owner: 'pod-r' })));
    const unowned = await store.create({ pool });
    await store.setMoving(pool, [owned[0]!.id], 'mig-read');
    const corrupted = await store.create({ pool, owner: 'pod-r' });
    const key = store.core.keys.session(pool, corrupted.id);
    await rewriteStored(store.core.redis, key, (header) => void (header[H.ep] = 'not-a-number'));
    const gone = newSessionId();
    const states = await store.readOwners(pool, [...owned.map((s) => s.id), unowned.id, corrupted.id, gone]);
    expect(states.size).to.equal(21);
    expect(states.get(owned[0]!.id)).to.deep.equal({ sessionId: owned[0]!.id, pool, owner: 'pod-r', epoch: 1, movingBy: 'mig-read' });
    expect(states.get(owned[1]!.id)).to.include({ owner: 'pod-r', epoch: 1, movingBy: null });
    expect(states.get(unowned.id)).to.include({ owner: null, epoch: 0, movingBy: null, pool });
    expect(states.has(gone)).to.equal(false);
    expect(states.has(corrupted.id)).to.equal(false);
    expect(await store.core.redis.exists(store.core.keys.quarantine(pool, corrupted.id))).to.equal(1);
    expect(await store.readOwners(pool, [])).to.deep.equal(new Map());
  });

  it('migrateOwners moves with a CAS and clears the mark in the same script; a stale epoch is refused and keeps its mark', async () => {
    const pool = 'pool-mig';
    const sessions = await Promise.all(Array.from({ length: 30 }, () => store.create({ pool, owner: 'pod-1' })));
    const ids = sessions.map((s) => s.id);
    await store.setMoving(pool, ids, 'mig-a');
    const foreign = sessions[2]!;
    await store.setMoving(pool, [foreign.id], 'mig-other'); // another migration's mark: moved but not cleared
    const gone = newSessionId();
    const moves = ids.map((id, i) => ({
      sessionId: id,
      fromOwner: 'pod-1',
      fromEpoch: i === 1 ? 7 : 1,
      toOwner: i % 2 ? 'pod-2' : 'pod-3',
    }));
    moves.push({ sessionId: gone, fromOwner: 'pod-1', fromEpoch: 1, toOwner: 'pod-2' });
    const outcomes = await store.migrateOwners(pool, moves, 'mig-a');
    expect(outcomes.filter((o) => o.status === 'moved')).to.have.length(29);
    expect(outcomes[0]).to.deep.equal({ sessionId: ids[0], status: 'moved', epoch: 2 });
    expect(outcomes[1]).to.deep.equal({ sessionId: ids[1], status: 'conflict', owner: 'pod-1', epoch: 1 });
    expect(outcomes[30]).to.deep.equal({ sessionId: gone, status: 'missing' });
    const after = await store.readOwners(pool, ids);
    expect(after.get(ids[1]!)).to.include({ owner: 'pod-1', epoch: 1, movingBy: 'mig-a' }); // refused: unchanged, still frozen
    expect(after.get(foreign.id)).to.include({ owner: 'pod-3', epoch: 2, movingBy: 'mig-other' });
    const cleared = ids.filter((id, i) => i !== 1 && i !== 2).map((id) => after.get(id)!);
    expect(cleared.every((s) => s.movingBy === null && s.epoch === 2)).to.equal(true);
    // owner indexes: batched per owner, and the refused and missing sessions are not left on the target's index
    expect((await store.listByOwner(pool, 'pod-1')).sort()).to.deep.equal([ids[1]]);
    expect((await store.listByOwner(pool, 'pod-2')).length).to.equal(14);
    expect((await store.listByOwner(pool, 'pod-3')).length).to.equal(15);
    const counts = await store.countByOwner(pool);
    expect([counts.get('pod-1'), counts.get('pod-2'), counts.get('pod-3'), counts.get('')]).to.deep.equal([1, 14, 15, 0]);
    const leases = await leaseIndexMembers(store.core, pool);
    expect(leases.length).to.equal(30); // the 29 moved (new leases) and the refused one (its lease from create)
    // the old owner is fenced; the new owner writes once the mark is gone
    await expectRejected(
      store.update(ids[0]!, { late: 1 }, { pool, expectedVersion: 1, fence: { epoch: 1, owner: 'pod-1' } }),
      FencedError,
    );
    expect((await store.update(ids[0]!, { w: 1 }, { pool, expectedVersion: 1, fence: { epoch: 2, owner: 'pod-3' } })).version).to.equal(2);
    await expectRejected(
      store.update(ids[1]!, { w: 1 }, { pool, expectedVersion: 1, fence: { epoch: 1, owner: 'pod-1' } }),
      SessionMovingError,
    );
    // a repeated move (a retry after a lost reply) is refused, never applied twice: epochs only grow by one per move
    const again = await store.migrateOwners(pool, [moves[0]!], 'mig-a');
    expect(again[0]).to.deep.equal({ sessionId: ids[0], status: 'conflict', owner: 'pod-3', epoch: 2 });
    expect((await store.listByOwner(pool, 'pod-3')).includes(ids[0]!)).to.equal(true);
    // a session of another pool is not found: its key names the other pool (the index steps name only `pool`)
    const other = await store.create({ pool: 'pool-elsewhere', owner: 'pod-1' });
    const [wrongPool] = await store.migrateOwners(
      pool,
      [{ sessionId: other.id, fromOwner: 'pod-1', fromEpoch: 1, toOwner: 'pod-2' }],
      'mig-a',
    );
    expect(wrongPool).to.deep.equal({ sessionId: other.id, status: 'missing' });
    expect(await store.get(other.id, { pool: 'pool-elsewhere', touch: false })).to.include({ owner: 'pod-1', epoch: 1 });
    expect((await store.listByOwner(pool, 'pod-2')).includes(other.id)).to.equal(false);
    // to nobody: unowned, lease 0, out of the lease index
    const [toNone] = await store.migrateOwners(pool, [{ sessionId: ids[3]!, fromOwner: 'pod-2', fromEpoch: 2, toOwner: null }], 'mig-a');
    expect(toNone).to.deep.equal({ sessionId: ids[3], status: 'moved', epoch: 3 });
    expect(await store.core.redis.zscore(store.core.keys.leaseIndex(pool, indexBucket(ids[3]!)), ids[3]!)).to.equal(null);
    expect((await store.countByOwner(pool)).get('')).to.equal(1);
  });

  it('a crash between the session step and the index step leaves an index naming too much, which the sweep repairs', async () => {
    const pool = 'pool-crash';
    const sessions = await Promise.all(Array.from({ length: 10 }, () => store.create({ pool, owner: 'pod-a' })));
    const { keys, redis } = store.core;
    // What migrateOwners does up to the crash: the target index first, then the session scripts; never the index removal.
    await Promise.all(
      addToOwnerIndexes(
        store.core,
        pool,
        sessions.map((s) => ({ owner: 'pod-b', id: s.id })),
      ),
    );
    for (const s of sessions) {
      const reply = await scripts.migrate.run(redis, [keys.session(pool, s.id)], ['pod-a', 1, 'pod-b', 30_000, pool, 'mig-crash']);
      expect((reply as unknown[])[0]).to.equal(1);
    }
    expect((await store.listByOwner(pool, 'pod-a')).length).to.equal(10); // stale: names too much
    expect((await store.listByOwner(pool, 'pod-b')).length).to.equal(10); // never too little
    expect((await store.sweep(pool)).ownerEntriesRemoved).to.equal(0); // seen once: kept, as a move in flight
    const result = await store.sweep(pool);
    expect(result.ownerEntriesRemoved).to.equal(10);
    expect(await store.listByOwner(pool, 'pod-a')).to.deep.equal([]);
    expect((await store.listByOwner(pool, 'pod-b')).length).to.equal(10);
    const counts = await store.countByOwner(pool);
    expect(counts.get('pod-b')).to.equal(10);
    expect(counts.get('pod-a') ?? 0).to.equal(0);
  });
});
