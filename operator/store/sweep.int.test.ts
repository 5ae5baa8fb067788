import { expect } from 'chai';
import type { Registry } from 'prom-client';
import { H } from './codec.ts';
import { SessionCorruptedError, SessionNotFoundError, type RedisSessionStore } from './index.ts';
import { expectRejected, metricValue, rewriteStored, storedParts, testStore, uniquePrefix } from './test-helpers.int.ts';
import { INDEX_BUCKETS, indexBucket, newSessionId } from './keys.ts';
import { addToOwnerIndexes } from './indexes.ts';

describe('store: expiry, sweep and corruption', () => {
  const prefix = uniquePrefix('sweep');
  let store: RedisSessionStore;
  let registry: Registry;
  before(() => {
    // No grace: an entry seen stale by one sweep is removed by the next (owner-audit.ts).
    ({ store, registry } = testStore(prefix, { sweepAuditGraceMs: 0 }));
  });
  after(() => store.close());

  /** Rewrites one part of a session's stored header. */
  async function setHeaderPart(key: string, index: number, value: string): Promise<void> {
    await rewriteStored(store.core.redis, key, (header) => void (header[index] = value));
  }

  it('sweeps expired sessions out of the pool and owner indexes, and releases lapsed leases', async function () {
    this.timeout(20_000);
    const pool = 'pool-expiry';
    const shortLived = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.create({ pool, ttlSeconds: 1, ...(i < 5 ? { owner: 'pod-a' } : {}) })),
    );
    const longLived = await Promise.all(Array.from({ length: 10 }, () => store.create({ pool, ttlSeconds: 60 })));
    const leased = longLived[0]!;
    await store.claim(leased.id, 'pod-b', { pool, leaseMs: 100 });
    expect(await store.count(pool)).to.equal(30);
    await new Promise((r) => setTimeout(r, 1300));
    expect(await store.get(shortLived[0]!.id, { pool })).to.equal(null);
    // The index still names them until the sweep runs (Redis expired the values itself).
    expect(await store.count(pool)).to.equal(30);
    const result = await store.sweep(pool);
    expect(result.expired).to.equal(20);
    expect(result.leasesReleased).to.equal(1);
    expect(await store.count(pool)).to.equal(10);
    expect(await store.listByOwner(pool, 'pod-a')).to.deep.equal([]);
    expect(await store.listByOwner(pool, 'pod-b')).to.deep.equal([]);
    expect(await store.get(leased.id, { pool })).to.include({ owner: null, epoch: 2 });
    expect(await metricValue(registry, 'spo_store_expiries_total', { pool })).to.equal(20);
    expect(await metricValue(registry, 'spo_store_sessions', { pool })).to.equal(10);
    const again = await store.sweep(pool);
    expect(again).to.include({ expired: 0, leasesReleased: 0 });
  });

  it('keeps touched sessions: their index score is brought up to their sliding expiry', async function () {
    this.timeout(20_000);
    const pool = 'pool-touch';
    const s = await store.create({ pool, ttlSeconds: 2 });
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 700));
      expect(await store.get(s.id, { pool })).to.not.equal(null);
      await store.sweep(pool);
    }
    expect(await store.count(pool)).to.equal(1);
    const r = await store.sweep(pool);
    expect(r.expired).to.equal(0);
  });

  it('repairs an owner index naming a session it no longer owns', async () => {
    const pool = 'pool-repair';
    const s = await store.create({ pool, owner: 'pod-c' });
    await Promise.all(addToOwnerIndexes(store.core, pool, [{ owner: 'pod-d', id: s.id }]));
    // Seen stale once is what a claim in flight looks like: kept. Seen again, the header unchanged: removed.
    expect((await store.sweep(pool)).ownerEntriesRemoved).to.equal(0);
    expect(await store.listByOwner(pool, 'pod-d')).to.deep.equal([s.id]);
    const r = await store.sweep(pool);
    expect(r.ownerEntriesRemoved).to.equal(1);
    expect(await store.listByOwner(pool, 'pod-d')).to.deep.equal([]);
    expect(await store.listByOwner(pool, 'pod-c')).to.deep.equal([s.id]);
  });

  it("audits about sweepAuditSize of an owner's index entries per sweep, whatever the number of its bucket keys", async function () {
    this.timeout(30_000);
    const pool = 'pool-audit-page';
    const audited = testStore(`${prefix}-audit`, { sweepAuditSize: 32, sweepAuditGraceMs: 0 }).store;
    try {
      // 800 entries naming sessions that do not exist, over every bucket key of the owner's index (~50 each).
      const ids = Array.from({ length: 800 }, () => newSessionId());
      expect(new Set(ids.map(indexBucket)).size).to.equal(INDEX_BUCKETS);
      await Promise.all(
        addToOwnerIndexes(
          audited.core,
          pool,
          ids.map((id) => ({ owner: 'pod-gone', id })),
        ),
      );
      // The first sweep only suspects what it reads; the second removes those (still stale) and suspects the
      // next page. One page of 32 shared by the 16 keys (SSCAN's COUNT is a hint: a few more may come); a
      // page of 32 per key would have removed about 512.
      expect((await audited.sweep(pool)).ownerEntriesRemoved).to.equal(0);
      const second = await audited.sweep(pool);
      expect(second.ownerEntriesRemoved).to.be.within(1, 96);
      let removed = second.ownerEntriesRemoved ?? 0;
      for (let sweep = 0; sweep < 100 && removed < ids.length; sweep++) removed += (await audited.sweep(pool)).ownerEntriesRemoved ?? 0;
      expect(removed).to.equal(ids.length);
      expect(await audited.listByOwner(pool, 'pod-gone')).to.deep.equal([]);
    } finally {
      await audited.close();
    }
  });

  it('detects corruption (checksum, schema, type), quarantines it and counts it', async () => {
    const pool = 'pool-corrupt';
    const { redis, keys } = store.core;
    const a = await store.create({ pool, data: { secret: 'x' } });
    await rewriteStored(redis, keys.session(pool, a.id), () => undefined, JSON.stringify({ secret: 'tampered' }));
    const error = (await expectRejected(store.get(a.id, { pool }), SessionCorruptedError)) as SessionCorruptedError;
    expect(error.reason).to.equal('checksum mismatch');
    expect(error.message).to.not.include('tampered');
    expect(await redis.exists(keys.session(pool, a.id))).to.equal(0);
    expect((await storedParts(redis, keys.quarantine(pool, a.id))).data).to.equal(JSON.stringify({ secret: 'tampered' }));
    expect(await redis.pttl(keys.quarantine(pool, a.id))).to.be.greaterThan(0);
    expect(await store.get(a.id, { pool })).to.equal(null);

    const b = await store.create({ pool });
    await setHeaderPart(keys.session(pool, b.id), H.sv, '99');
    expect(((await expectRejected(store.get(b.id, { pool }), SessionCorruptedError)) as SessionCorruptedError).reason).to.match(/schema/);

    const c = await store.create({ pool });
    await setHeaderPart(keys.session(pool, c.id), H.v, '');
    await expectRejected(
      store.mutate(c.id, () => 1, { pool }),
      SessionCorruptedError,
    );

    // A malformed header met by a script (update, claim): quarantined as well.
    const e = await store.create({ pool });
    await redis.set(keys.session(pool, e.id), `${pool}\nnot a header`, 'KEEPTTL');
    await expectRejected(store.update(e.id, { n: 1 }, { pool, expectedVersion: 1 }), SessionCorruptedError);
    expect(await redis.exists(keys.quarantine(pool, e.id))).to.equal(1);
    const f = await store.create({ pool });
    await redis.set(keys.session(pool, f.id), '{"a session value":"without a header"}', 'KEEPTTL');
    await expectRejected(store.claim(f.id, 'pod-x', { pool }), SessionCorruptedError);
    expect(await redis.exists(keys.quarantine(pool, f.id))).to.equal(1);
    expect(await redis.zscore(keys.poolIndex(pool, indexBucket(f.id)), f.id)).to.equal(null); // the key names the pool: its index entry goes too
    await expectRejected(store.update(f.id, { n: 1 }, { pool, expectedVersion: 1 }), SessionNotFoundError);

    const d = 'corrupt'.padEnd(32, 'd');
    await redis.hset(keys.session(pool, d), 'm', 'not a string'); // a hash, as a pre-release build (schema 2) left them
    await expectRejected(store.get(d, { pool }), SessionCorruptedError);
    expect(await redis.hget(keys.quarantine(pool, d), 'm')).to.equal('not a string');

    expect(await metricValue(registry, 'spo_store_corruptions_total')).to.equal(6);
    // Every session key names its pool, so each quarantine drops its pool-index entry, headerless f's too.
    expect(await store.count(pool)).to.equal(0);
  });
});
