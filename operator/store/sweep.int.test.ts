import { expect } from 'chai';
import type { Registry } from 'prom-client';
import { H } from './codec.ts';
import { SessionCorruptedError, SessionNotFoundError, type RedisSessionStore } from './index.ts';
import { expectRejected, metricValue, rewriteStored, storedParts, testStore, uniquePrefix } from './test-helpers.int.ts';

describe('store: expiry, sweep and corruption', () => {
  const prefix = uniquePrefix('sweep');
  let store: RedisSessionStore;
  let registry: Registry;
  before(() => {
    ({ store, registry } = testStore(prefix));
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
    await store.claim(leased.id, 'pod-b', 100);
    expect(await store.count(pool)).to.equal(30);
    await new Promise((r) => setTimeout(r, 1300));
    expect(await store.get(shortLived[0]!.id)).to.equal(null);
    // The index still names them until the sweep runs (Redis expired the values itself).
    expect(await store.count(pool)).to.equal(30);
    const result = await store.sweep(pool);
    expect(result.expired).to.equal(20);
    expect(result.leasesReleased).to.equal(1);
    expect(await store.count(pool)).to.equal(10);
    expect(await store.listByOwner(pool, 'pod-a')).to.deep.equal([]);
    expect(await store.listByOwner(pool, 'pod-b')).to.deep.equal([]);
    expect(await store.get(leased.id)).to.include({ owner: null, epoch: 2 });
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
      expect(await store.get(s.id)).to.not.equal(null);
      await store.sweep(pool);
    }
    expect(await store.count(pool)).to.equal(1);
    const r = await store.sweep(pool);
    expect(r.expired).to.equal(0);
  });

  it('repairs an owner index naming a session it no longer owns', async () => {
    const pool = 'pool-repair';
    const s = await store.create({ pool, owner: 'pod-c' });
    await store.core.redis.sadd(store.core.keys.ownerIndex(pool, 'pod-d'), s.id);
    await store.core.redis.sadd(store.core.keys.owners(pool), 'pod-d');
    const r = await store.sweep(pool);
    expect(r.ownerEntriesRemoved).to.equal(1);
    expect(await store.listByOwner(pool, 'pod-d')).to.deep.equal([]);
    expect(await store.listByOwner(pool, 'pod-c')).to.deep.equal([s.id]);
  });

  it('detects corruption (checksum, schema, type), quarantines it and counts it', async () => {
    const pool = 'pool-corrupt';
    const { redis, keys } = store.core;
    const a = await store.create({ pool, data: { secret: 'x' } });
    await rewriteStored(redis, keys.session(a.id), () => undefined, JSON.stringify({ secret: 'tampered' }));
    const error = (await expectRejected(store.get(a.id), SessionCorruptedError)) as SessionCorruptedError;
    expect(error.reason).to.equal('checksum mismatch');
    expect(error.message).to.not.include('tampered');
    expect(await redis.exists(keys.session(a.id))).to.equal(0);
    expect((await storedParts(redis, keys.quarantine(a.id))).data).to.equal(JSON.stringify({ secret: 'tampered' }));
    expect(await redis.pttl(keys.quarantine(a.id))).to.be.greaterThan(0);
    expect(await store.get(a.id)).to.equal(null);

    const b = await store.create({ pool });
    await setHeaderPart(keys.session(b.id), H.sv, '99');
    expect(((await expectRejected(store.get(b.id), SessionCorruptedError)) as SessionCorruptedError).reason).to.match(/schema/);

    const c = await store.create({ pool });
    await setHeaderPart(keys.session(c.id), H.v, '');
    await expectRejected(
      store.mutate(c.id, () => 1),
      SessionCorruptedError,
    );

    // A malformed header met by a script (update, claim): quarantined as well.
    const e = await store.create({ pool });
    await redis.set(keys.session(e.id), `${pool}\nnot a header`, 'KEEPTTL'); // the pool part still drops its index entry
    await expectRejected(store.update(e.id, { n: 1 }, { expectedVersion: 1 }), SessionCorruptedError);
    expect(await redis.exists(keys.quarantine(e.id))).to.equal(1);
    const f = await store.create({ pool });
    await redis.set(keys.session(f.id), '{"a session value":"without a header"}', 'KEEPTTL');
    await expectRejected(store.claim(f.id, 'pod-x'), SessionNotFoundError); // claim reads the pool from the header first
    await expectRejected(store.update(f.id, { n: 1 }, { expectedVersion: 1 }), SessionCorruptedError);

    const d = 'corrupt'.padEnd(32, 'd');
    await redis.hset(keys.session(d), 'm', 'not a string'); // a hash, as a pre-release build (schema 2) left them
    await expectRejected(store.get(d), SessionCorruptedError);
    expect(await redis.hget(keys.quarantine(d), 'm')).to.equal('not a string');

    expect(await metricValue(registry, 'spo_store_corruptions_total')).to.equal(6);
    // f's value had no header, so its pool was unknown: its pool-index entry stays until the sweep finds it gone.
    expect(await store.count(pool)).to.equal(1);
  });
});
