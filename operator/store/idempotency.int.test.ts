import { expect } from 'chai';
import { idempotencyKeyOf, idempotencyOrderKeyOf } from './idempotency.ts';
import type { RedisSessionStore } from './index.ts';
import { testStore, uniquePrefix } from './test-helpers.int.ts';

describe('store: idempotency records on the real Redis Cluster', () => {
  const prefix = uniquePrefix('idem');
  const pool = 'pool-idem';
  let store: RedisSessionStore;

  before(() => {
    ({ store } = testStore(prefix));
  });
  after(() => store.close());

  const reply = (n: number) => ({ status: 200, body: { result: n } });

  it('records a reply with its write, answers it, and keeps only the newest maxEntries of a session', async () => {
    const created = await store.create({ pool, data: { n: 0 } });
    let version = created.version;
    for (let n = 1; n <= 12; n++) {
      const written = await store.updateRecorded(
        created.id,
        { n },
        { pool, expectedVersion: version },
        { key: `k-${n}`, reply: reply(n), maxEntries: 5 },
      );
      version = written.version;
    }
    // The oldest seven were dropped in order; the five newest answer.
    for (let n = 1; n <= 7; n++) expect(await store.recordedReply(created.id, `k-${n}`, { pool }), `k-${n}`).to.equal(undefined);
    for (let n = 8; n <= 12; n++) expect(await store.recordedReply(created.id, `k-${n}`, { pool })).to.deep.equal(reply(n));
    const key = store.core.keys.session(pool, created.id);
    expect(await store.core.redis.hlen(idempotencyKeyOf(key))).to.equal(5);
    expect(await store.core.redis.zcard(idempotencyOrderKeyOf(key))).to.equal(5);
    expect(await store.core.redis.pttl(idempotencyOrderKeyOf(key))).to.be.greaterThan(3_500_000);
  });

  it('drops entries older than keepMs at the next record, and a refused write records nothing', async () => {
    const created = await store.create({ pool, data: { n: 0 } });
    const first = await store.updateRecorded(
      created.id,
      { n: 1 },
      { pool, expectedVersion: 1 },
      { key: 'old', reply: reply(1), keepMs: 1_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await store.updateRecorded(
      created.id,
      { n: 2 },
      { pool, expectedVersion: first.version },
      { key: 'new', reply: reply(2), keepMs: 1_000 },
    );
    const key = store.core.keys.session(pool, created.id);
    expect(await store.core.redis.hkeys(idempotencyKeyOf(key))).to.deep.equal(['new']);
    expect(await store.core.redis.zrange(idempotencyOrderKeyOf(key), '0', '-1')).to.deep.equal(['new']);
    // A stale expected version: no write, so no record.
    const refused = await store
      .updateRecorded(created.id, { n: 3 }, { pool, expectedVersion: 1 }, { key: 'lost', reply: reply(3) })
      .catch((error: unknown) => error);
    expect(refused).to.be.instanceOf(Error);
    expect(await store.recordedReply(created.id, 'lost', { pool })).to.equal(undefined);
  });

  it('forgets both the records and their order with the session', async () => {
    const created = await store.create({ pool, data: { n: 0 } });
    await store.updateRecorded(created.id, { n: 1 }, { pool, expectedVersion: 1 }, { key: 'a', reply: reply(1) });
    await store.forgetRecords(created.id, { pool });
    const key = store.core.keys.session(pool, created.id);
    expect(await store.core.redis.exists(idempotencyKeyOf(key), idempotencyOrderKeyOf(key))).to.equal(0);
  });
});
