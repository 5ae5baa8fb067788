import { expect } from 'chai';
import type { RedisSessionStore } from './index.ts';
import { BUCKETS, listPoolSessions } from './indexes.ts';
import { INDEX_BUCKETS, indexBucket, keySlot } from './keys.ts';
import { leaseIndexMembers, testStore, uniquePrefix } from './test-helpers.int.ts';

describe('store: index buckets', () => {
  const prefix = uniquePrefix('buckets');
  let store: RedisSessionStore;
  before(() => {
    ({ store } = testStore(prefix));
  });
  after(() => store.close());

  it('spreads a pool over every bucket, and counts, lists and lists by owner across all of them', async () => {
    const pool = 'ns/spread';
    const owned = await Promise.all(Array.from({ length: 60 }, (_, i) => store.create({ pool, owner: i % 2 ? 'w-odd' : 'w-even' })));
    const unowned = await Promise.all(Array.from({ length: 140 }, () => store.create({ pool })));
    const all = [...owned, ...unowned].map((s) => s.id);
    const { keys, redis } = store.core;
    // Each session's entry is in its own bucket, and 200 random ids fill all 16 buckets.
    const perBucket = await Promise.all(BUCKETS.map((b) => redis.zrange(keys.poolIndex(pool, b), '0', '-1')));
    expect(perBucket.every((ids, b) => ids.every((id) => indexBucket(id) === b))).to.equal(true);
    expect(perBucket.filter((ids) => ids.length > 0).length).to.equal(INDEX_BUCKETS);
    // The buckets are slots of more than one master (a 3-master test cluster).
    const masters = new Set(BUCKETS.map((b) => redis.slots[keySlot(keys.poolIndex(pool, b))]?.[0]));
    expect(masters.size).to.be.greaterThan(1);

    expect(await store.count(pool)).to.equal(200);
    // Pages of 7 across the buckets: every id exactly once.
    const listed: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await store.list(pool, { cursor, limit: 7 });
      listed.push(...page.ids);
      cursor = page.cursor;
      pages++;
    } while (cursor !== null && pages < 500);
    expect(new Set(listed)).to.deep.equal(new Set(all));
    expect((await listPoolSessions(store.core, pool)).sort()).to.deep.equal([...all].sort());

    const odd = owned.filter((_, i) => i % 2).map((s) => s.id);
    expect((await store.listByOwner(pool, 'w-odd')).sort()).to.deep.equal([...odd].sort());
    const counts = await store.countByOwner(pool);
    expect([counts.get('w-odd'), counts.get('w-even'), counts.get('')]).to.deep.equal([30, 30, 140]);
    expect((await leaseIndexMembers(store.core, pool)).sort()).to.deep.equal(owned.map((s) => s.id).sort());

    // Deletes leave every bucket they were in.
    await Promise.all(owned.slice(0, 10).map((s) => store.delete(s.id, { pool })));
    expect(await store.count(pool)).to.equal(190);
    expect((await store.countByOwner(pool)).get('w-odd')).to.equal(25);
    expect((await leaseIndexMembers(store.core, pool)).length).to.equal(50);
  });

  it('refuses a list cursor it did not make', async () => {
    for (const cursor of ['x', '16.0', '3', '1.2.3', '-1.0'])
      await store.list('ns/spread', { cursor }).then(
        () => expect.fail(`cursor ${cursor} accepted`),
        (error: unknown) => expect((error as { code?: string }).code).to.equal('INVALID_ARGUMENT'),
      );
  });

  it('moves a pool written in the single-slot layout into the buckets on first read, and the sweep moves later entries', async () => {
    const pool = 'ns/legacy';
    const { keys, redis } = store.core;
    const sessions = await Promise.all(Array.from({ length: 30 }, (_, i) => store.create({ pool, ...(i < 10 ? { owner: 'w-old' } : {}) })));
    // Rewrite the indexes as the previous version kept them: one slot `{pool:<pool>}`, owner index `{pool:<pool>:owner:<o>}`.
    const scores = await Promise.all(sessions.map((s) => redis.zscore(keys.poolIndex(pool, indexBucket(s.id)), s.id)));
    const leases = await Promise.all(sessions.slice(0, 10).map((s) => redis.zscore(keys.leaseIndex(pool, indexBucket(s.id)), s.id)));
    await Promise.all(
      BUCKETS.flatMap((b) => [
        keys.poolIndex(pool, b),
        keys.leaseIndex(pool, b),
        keys.owners(pool, b),
        keys.ownerIndex(pool, 'w-old', b),
      ]).map((key) => redis.del(key)),
    );
    await redis.zadd(keys.legacy.poolIndex(pool), ...sessions.flatMap((s, i) => [scores[i]!, s.id]));
    await redis.zadd(keys.legacy.leaseIndex(pool), ...sessions.slice(0, 10).flatMap((s, i) => [leases[i]!, s.id]));
    await redis.sadd(keys.legacy.ownerIndex(pool, 'w-old'), ...sessions.slice(0, 10).map((s) => s.id));
    await redis.sadd(keys.legacy.owners(pool), 'w-old');

    // Another store (a fresh process) reads the pool: every entry is found, in the buckets, with its score.
    const { store: fresh } = testStore(prefix);
    try {
      expect(await fresh.count(pool)).to.equal(30);
      expect((await fresh.listByOwner(pool, 'w-old')).sort()).to.deep.equal(
        sessions
          .slice(0, 10)
          .map((s) => s.id)
          .sort(),
      );
      expect((await fresh.countByOwner(pool)).get('w-old')).to.equal(10);
      expect(await redis.exists(keys.legacy.poolIndex(pool), keys.legacy.leaseIndex(pool), keys.legacy.owners(pool))).to.equal(0);
      expect(await redis.exists(keys.legacy.ownerIndex(pool, 'w-old'))).to.equal(0);
      const s0 = sessions[0]!;
      expect(await redis.zscore(keys.poolIndex(pool, indexBucket(s0.id)), s0.id)).to.equal(scores[0]);
      expect(await redis.zscore(keys.leaseIndex(pool, indexBucket(s0.id)), s0.id)).to.equal(leases[0]);

      // An entry written in the old layout afterwards (an older process in a rolling upgrade) moves at the next sweep.
      const late = await fresh.create({ pool, owner: 'w-late' });
      await redis.zrem(keys.poolIndex(pool, indexBucket(late.id)), late.id);
      await redis.srem(keys.ownerIndex(pool, 'w-late', indexBucket(late.id)), late.id);
      await redis.zadd(keys.legacy.poolIndex(pool), Date.now() + 60_000, late.id);
      await redis.sadd(keys.legacy.ownerIndex(pool, 'w-late'), late.id);
      await redis.sadd(keys.legacy.owners(pool), 'w-late');
      expect(await fresh.count(pool)).to.equal(30); // this process already moved the pool once
      await fresh.sweep(pool);
      expect(await fresh.count(pool)).to.equal(31);
      expect(await fresh.listByOwner(pool, 'w-late')).to.deep.equal([late.id]);
      expect(await redis.exists(keys.legacy.poolIndex(pool), keys.legacy.owners(pool))).to.equal(0);
    } finally {
      await fresh.close();
    }
  });
});
