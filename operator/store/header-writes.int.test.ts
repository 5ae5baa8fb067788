// The scripts that change only a session's header (leases, owners, moving marks) read a prefix of the
// value (LOAD_PREFIX_BYTES), not all of a large session's data; when the header's length changes they
// write the whole value again with its data unchanged (lua.ts, `load` and `save`).
import { expect } from 'chai';
import { H, checksum } from './codec.ts';
import { SessionCorruptedError, SessionNotFoundError } from './errors.ts';
import type { RedisSessionStore } from './session-store.ts';
import { expectRejected, storedParts, testStore, uniquePrefix } from './test-helpers.int.ts';

describe('store: header-only scripts on large sessions (real Redis Cluster)', () => {
  const prefix = uniquePrefix('header');
  const pool = 'pool-header';
  let store: RedisSessionStore;

  before(() => {
    ({ store } = testStore(prefix));
  });
  after(() => store.close());

  it('keeps a 50 KiB session byte for byte through lease, owner and mark changes that keep or change the header length', async () => {
    const data = { program: 'p'.repeat(40_000), turns: Array.from({ length: 300 }, (_, i) => ({ i, text: `turn ${i} é✓` })) };
    const created = await store.create({ pool, owner: 'w-1', data });
    const key = store.core.keys.session(pool, created.id);
    const original = await storedParts(store.core.redis, key);
    expect(original.data.length).to.be.greaterThan(45_000);

    // Same length (renewed in place): the same owner claims again, then renews.
    const lease = await store.claim(created.id, 'w-1', { pool, leaseMs: 10_000 });
    await store.renew(lease, 20_000);
    // Longer (the mark), then shorter (a move to a longer owner name that clears the mark).
    const migration = 'evacuate-w-1-a-long-migration-name';
    await store.setMoving(pool, [created.id], migration);
    expect((await store.get(created.id, { pool, touch: false }))?.movingBy).to.equal(migration);
    const [moved] = await store.migrateOwners(
      pool,
      [{ sessionId: created.id, fromOwner: 'w-1', fromEpoch: lease.epoch, toOwner: 'worker-with-a-longer-name' }],
      migration,
    );
    expect(moved).to.deep.include({ status: 'moved', epoch: lease.epoch + 1 });
    // Shorter again: released (no owner, lease 0).
    const taken = await store.claim(created.id, 'worker-with-a-longer-name', { pool });
    await store.release(taken);

    const read = await store.get(created.id, { pool, touch: false });
    expect(read).to.include({ owner: null, movingBy: null, version: 1, epoch: lease.epoch + 2 });
    expect(read!.data).to.deep.equal(data);
    const stored = await storedParts(store.core.redis, key);
    expect(stored.data).to.equal(original.data);
    expect(stored.header[H.cs]).to.equal(checksum(stored.data));
    expect(stored.header[H.mov]).to.equal('');
  });

  it('tells an absent session from an empty value: not found, and corrupted', async () => {
    const absent = 'AAAAAAAAAAAAAAAAAAAAAA';
    await expectRejected(store.claim(absent, 'w-1', { pool }), SessionNotFoundError);
    const created = await store.create({ pool, data: { n: 1 } });
    await store.core.redis.set(store.core.keys.session(pool, created.id), '');
    await expectRejected(store.claim(created.id, 'w-1', { pool }), SessionCorruptedError);
  });
});
