import { expect } from 'chai';
import { H, checksum, writeSegments } from './codec.ts';
import { scripts } from './lua.ts';
import {
  AnonymousSessionError,
  FencedError,
  InvalidSessionDataError,
  InvalidSessionIdError,
  InvalidTtlError,
  SessionMovingError,
  SessionNotFoundError,
  SessionOwnedError,
  SessionTooLargeError,
  VersionConflictError,
  LeaseLostError,
  InvalidArgumentError,
  InvalidNameError,
  newSessionId,
  type RedisSessionStore,
} from './index.ts';
import type { JsonValue } from './types.ts';
import { expectRejected, metricValue, storedParts, testStore, uniquePrefix } from './test-helpers.int.ts';
import type { Registry } from 'prom-client';
import { indexBucket } from './keys.ts';

describe('store: sessions on the real Redis Cluster', () => {
  const prefix = uniquePrefix('core');
  const pool = 'pool-core';
  let store: RedisSessionStore;
  let registry: Registry;

  before(() => {
    ({ store, registry } = testStore(prefix, { pools: { 'pool-short': { ttlSeconds: 120, anonymousTtlSeconds: 30 } } }));
  });
  after(() => store.close());

  it('creates, gets (touching), checks existence and deletes a session', async () => {
    const created = await store.create({ pool, data: { cart: [1, 2] } });
    expect(created.id).to.match(/^[A-Za-z0-9_-]{22}$/);
    expect(created).to.include({ pool, version: 1, ttlSeconds: 3600, anonymous: false, owner: null, epoch: 0, movingBy: null });
    expect(created.data).to.deep.equal({ cart: [1, 2] });
    expect(created.checksum).to.match(/^[0-9a-f]{8}$/);
    // The default touch granularity (60 s, at most a tenth of the TTL): a get 1.1 s later only reads.
    await new Promise((r) => setTimeout(r, 1100));
    const key = store.core.keys.session(pool, created.id);
    const within = await store.get(created.id, { pool });
    expect(within?.data).to.deep.equal({ cart: [1, 2] });
    expect(within!.lastAccessedAt).to.equal(created.lastAccessedAt);
    expect(await store.core.redis.pttl(key)).to.be.below(3_599_000);
    // With a granularity of 1 s, the same get sets lastAccessedAt and slides the TTL.
    const { store: fine } = testStore(prefix, { touchGranularityMs: 1000 });
    try {
      const read = await fine.get(created.id, { pool });
      expect(read?.data).to.deep.equal({ cart: [1, 2] });
      expect(read!.lastAccessedAt).to.be.greaterThan(created.lastAccessedAt);
      expect(await store.core.redis.pttl(key)).to.be.greaterThan(3_599_000);
    } finally {
      await fine.close();
    }
    expect(await store.exists(created.id, { pool })).to.equal(true);
    expect(await store.delete(created.id, { pool })).to.equal(true);
    expect(await store.delete(created.id, { pool })).to.equal(false);
    expect(await store.get(created.id, { pool })).to.equal(null);
    expect(await store.exists(created.id, { pool })).to.equal(false);
  });

  it('touches coarsely: lastAccessedAt and the TTL slide after the touch granularity, not within it', async () => {
    const { store: coarse } = testStore(prefix, { touchGranularityMs: 300 });
    try {
      const { redis, keys } = coarse.core;
      const s = await coarse.create({ pool, data: { n: 1 }, ttlSeconds: 60 });
      const key = keys.session(pool, s.id);
      await new Promise((r) => setTimeout(r, 100));
      // Within the granularity: a read only (la and the TTL stay).
      const within = await coarse.get(s.id, { pool });
      expect(within!.lastAccessedAt).to.equal(s.lastAccessedAt);
      const part = async (index: number) => (await storedParts(redis, key)).header[index];
      expect(await part(H.la)).to.equal(String(s.lastAccessedAt));
      const pttlWithin = await redis.pttl(key);
      expect(pttlWithin).to.be.at.most(60_000 - 100);
      await new Promise((r) => setTimeout(r, 300));
      // After it: la = now (master clock) and the TTL is slid back to the full 60 s.
      const after = await coarse.get(s.id, { pool });
      expect(after!.lastAccessedAt).to.be.at.least(s.lastAccessedAt + 300);
      expect(await part(H.la)).to.equal(String(after!.lastAccessedAt));
      expect(await redis.pttl(key)).to.be.greaterThan(60_000 - 50);
      // touch: false never slides.
      await new Promise((r) => setTimeout(r, 350));
      const untouched = await coarse.get(s.id, { pool, touch: false });
      expect(untouched!.lastAccessedAt).to.equal(after!.lastAccessedAt);
      // An update slides on the same rule: due here (350 ms since the last slide) ...
      const u = await coarse.update(s.id, { n: 2 }, { pool, expectedVersion: 1 });
      expect(u.lastAccessedAt).to.be.at.least(after!.lastAccessedAt + 300);
      expect(u.data).to.deep.equal({ n: 2 });
      // ... and not within the granularity: version and data change, la and the TTL do not.
      const u2 = await coarse.update(s.id, { n: 3 }, { pool, expectedVersion: 2 });
      expect(u2).to.include({ version: 3, lastAccessedAt: u.lastAccessedAt });
      expect([await part(H.v), await part(H.la)]).to.deep.equal(['3', String(u.lastAccessedAt)]);
      // Rewriting the same data bumps the version and keeps a readable, checksummed record.
      const u3 = await coarse.update(s.id, { n: 3 }, { pool, expectedVersion: 3 });
      expect(u3).to.include({ version: 4, checksum: u2.checksum });
      expect((await coarse.get(s.id, { pool, touch: false }))!.data).to.deep.equal({ n: 3 });
    } finally {
      await coarse.close();
    }
  });

  it('bounds the touch granularity by a tenth of the TTL, and touches every get with granularity 0', async () => {
    const { store: coarse } = testStore(prefix, { touchGranularityMs: 60_000 });
    const { store: every } = testStore(prefix, { touchGranularityMs: 0 });
    try {
      const { redis, keys } = coarse.core;
      // TTL 2 s: the effective granularity is 200 ms, not 60 s.
      const s = await coarse.create({ pool, ttlSeconds: 2 });
      await new Promise((r) => setTimeout(r, 250));
      const read = await coarse.get(s.id, { pool });
      expect(read!.lastAccessedAt).to.be.at.least(s.lastAccessedAt + 200);
      expect(await redis.pttl(keys.session(pool, s.id))).to.be.greaterThan(1900);
      await new Promise((r) => setTimeout(r, 10));
      const again = await every.get(s.id, { pool });
      expect(again!.lastAccessedAt).to.be.greaterThan(read!.lastAccessedAt);
    } finally {
      await coarse.close();
      await every.close();
    }
  });

  it('applies TTL defaults per store, per pool and per session', async () => {
    const anon = await store.create({ pool, anonymous: true });
    expect(anon.ttlSeconds).to.equal(300);
    const short = await store.create({ pool: 'pool-short' });
    expect(short.ttlSeconds).to.equal(120);
    const shortAnon = await store.create({ pool: 'pool-short', anonymous: true });
    expect(shortAnon.ttlSeconds).to.equal(30);
    const explicit = await store.create({ pool, ttlSeconds: 42 });
    expect(explicit.ttlSeconds).to.equal(42);
    const pttl = await store.core.redis.pttl(store.core.keys.session(pool, explicit.id));
    expect(pttl).to.be.within(40_000, 42_000);
  });

  it('updates with a version check, and mutate retries', async () => {
    const s = await store.create({ pool, data: { n: 0 } });
    const u = await store.update(s.id, { n: 1 }, { pool, expectedVersion: 1 });
    expect(u.version).to.equal(2);
    expect(u.data).to.deep.equal({ n: 1 });
    let conflict: unknown;
    try {
      await store.update(s.id, { n: 99 }, { pool, expectedVersion: 1 });
    } catch (e) {
      conflict = e;
    }
    expect(conflict).to.be.instanceOf(VersionConflictError);
    expect((conflict as VersionConflictError).actualVersion).to.equal(2);
    expect(await metricValue(registry, 'spo_store_conflicts_total', { kind: 'version' })).to.be.greaterThan(0);
    const m = await store.mutate(s.id, (data) => ({ n: ((data as { n: number }).n ?? 0) + 1 }), { pool });
    expect(m.data).to.deep.equal({ n: 2 });
    expect(m.version).to.equal(3);
    await expectRejected(store.update('nope'.padEnd(32, 'x'), {}, { pool, expectedVersion: 1 }), SessionNotFoundError);
  });

  it('WRITE_IF_HEADER writes the value sent only while the stored header is the expected one, sliding when due', async () => {
    const { redis, keys } = store.core;
    const s = await store.create({ pool, data: { n: 0 }, ttlSeconds: 60 });
    const key = keys.session(pool, s.id);
    const stored = async () => (await storedParts(redis, key)).header.join('\n');
    const write = (expected: string, version: number, data: string, wid: string, granularityMs = 60_000) => {
      const { beforeV, beforeCs, beforeWid, laAt } = writeSegments(expected);
      const value = `${beforeV}${version}${beforeCs}${checksum(data)}${beforeWid}${wid}\n${data}`;
      const la = Number(expected.split('\n')[H.la]);
      const at = beforeV.length + String(version).length + laAt;
      return { value, reply: scripts.writeIfHeader.run(redis, [key], [value, `${expected}\n`, la, 60, granularityMs, at]) };
    };
    const before = await stored();
    await redis.pexpire(key, 30_000);
    const first = write(before, 2, '{"n":1}', 'w-fast-1');
    expect(await first.reply).to.equal(1);
    expect(await redis.get(key)).to.equal(first.value);
    expect(await redis.pttl(key)).to.be.within(1, 30_000); // kept, not slid
    expect(await store.get(s.id, { pool, touch: false }))
      .to.include({ version: 2 })
      .and.to.have.deep.property('data', { n: 1 });
    // The expected header is stale now: nothing is written.
    expect(await write(before, 2, '{"n":9}', 'w-fast-2').reply).to.equal(0);
    expect(await redis.get(key)).to.equal(first.value);
    // A slide that is due (granularity 0): written, la overwritten with the master's now, the TTL slid.
    const current = await stored();
    const third = write(current, 3, '{"n":3}', 'w-fast-3', 0);
    const now = await third.reply;
    expect(now)
      .to.be.a('number')
      .and.to.be.at.least(Number(current.split('\n')[H.la]));
    const after = await storedParts(redis, key);
    expect(after.header[H.la]).to.equal(String(now));
    expect(after.header[H.v]).to.equal('3');
    expect(after.data).to.equal('{"n":3}');
    expect(await redis.pttl(key)).to.be.greaterThan(59_000);
    expect(await store.get(s.id, { pool, touch: false })).to.include({ version: 3, lastAccessedAt: now as number });
    // Absent, or not a string: nothing is written.
    await redis.del(key);
    expect(await write(before, 2, '{"n":1}', 'w-fast-4').reply).to.equal(0);
    await redis.hset(key, 'm', before);
    expect(await write(before, 2, '{"n":1}', 'w-fast-5').reply).to.equal(0);
    expect(await redis.type(key)).to.equal('hash');
    await redis.del(key);
  });

  it('updates through the fast path after a read, and a stale cached header still loses no write and passes no stale fence', async () => {
    const { store: other } = testStore(prefix);
    try {
      const paths = async () => ({
        fast: await metricValue(registry, 'spo_store_update_paths_total', { path: 'fast' }),
        fallback: await metricValue(registry, 'spo_store_update_paths_total', { path: 'fallback' }),
      });
      const s = await store.create({ pool, data: { n: 0 }, owner: 'pod-a' });
      await store.get(s.id, { pool });
      const before = await paths();
      const a = await store.update(s.id, { n: 1 }, { pool, expectedVersion: 1, fence: { epoch: 1, owner: 'pod-a' } });
      const b = await store.update(s.id, { n: 2 }, { pool, expectedVersion: 2, fence: { epoch: 1, owner: 'pod-a' } });
      expect([a.version, b.version]).to.deep.equal([2, 3]);
      expect((await paths()).fast - before.fast).to.equal(2); // both through WRITE_IF_HEADER
      expect((await other.get(s.id, { pool }))?.data).to.deep.equal({ n: 2 });
      // Another process moves the session on; this process's cached header is stale from here.
      const [moved] = await other.moveOwners(pool, [{ sessionId: s.id, fromOwner: 'pod-a', fromEpoch: 1, toOwner: 'pod-b' }]);
      expect(moved).to.include({ status: 'moved' });
      await expectRejected(store.update(s.id, { n: 99 }, { pool, expectedVersion: 3, fence: { epoch: 1, owner: 'pod-a' } }), FencedError);
      const written = await other.update(s.id, { n: 3 }, { pool, expectedVersion: 3, fence: { epoch: 2, owner: 'pod-b' } });
      await expectRejected(store.update(s.id, { n: 98 }, { pool, expectedVersion: 3 }), VersionConflictError);
      // Both stale writes tried the fast path, found the header changed, and UPDATE refused them.
      expect(await paths()).to.deep.equal({ fast: before.fast + 2, fallback: before.fallback + 2 });
      expect(await store.get(s.id, { pool, touch: false })).to.include({ version: written.version, epoch: 2, owner: 'pod-b' });
      expect((await store.get(s.id, { pool }))?.data).to.deep.equal({ n: 3 });
    } finally {
      await other.close();
    }
  });

  it('recovers when a node has lost its scripts (NOSCRIPT): EVAL once, then EVALSHA again', async () => {
    const { redis } = store.core;
    const s = await store.create({ pool, data: { n: 0 } });
    await Promise.all(redis.nodes('master').map((node) => node.script('FLUSH')));
    // Full path (no cached header for a fresh store), fast path (header cached), touch: each script EVALed once.
    const { store: fresh, registry: freshRegistry } = testStore(prefix);
    try {
      const u = await fresh.update(s.id, { n: 1 }, { pool, expectedVersion: 1 });
      await Promise.all(redis.nodes('master').map((node) => node.script('FLUSH')));
      const v = await fresh.update(s.id, { n: 2 }, { pool, expectedVersion: u.version });
      expect(v).to.include({ version: 3 }).and.to.have.deep.property('data', { n: 2 });
      // NOSCRIPT is answered by EVAL, not counted as a transient error and retried.
      expect(await metricValue(freshRegistry, 'spo_store_retries_total', { op: 'update' })).to.equal(0);
      expect(await metricValue(freshRegistry, 'spo_store_update_paths_total', { path: 'fast' })).to.equal(1);
    } finally {
      await fresh.close();
    }
    expect((await store.get(s.id, { pool, touch: false }))?.data).to.deep.equal({ n: 2 });
  });

  it('loses no increment with 20 concurrent clients mutating one session', async () => {
    const clients = Array.from({ length: 20 }, () => testStore(prefix).store);
    try {
      const s = await store.create({ pool, data: { n: 0 } });
      const perClient = 10;
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < perClient; i++) {
            await client.mutate(s.id, (data) => ({ n: (data as { n: number }).n + 1 }), { pool, maxAttempts: 500 });
          }
        }),
      );
      const final = await store.get(s.id, { pool });
      expect(final?.data).to.deep.equal({ n: 20 * perClient });
      expect(final?.version).to.equal(1 + 20 * perClient);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('counts and lists a pool from its index, across slots, in pages', async () => {
    const listPool = 'pool-list';
    const ids = new Set<string>();
    for (let i = 0; i < 250; i++) ids.add((await store.create({ pool: listPool, data: i })).id);
    expect(await store.count(listPool)).to.equal(250);
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await store.list(listPool, { cursor, limit: 50 });
      page.ids.forEach((id) => seen.add(id));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null && pages < 100);
    expect(seen).to.deep.equal(ids);
    expect(pages).to.be.greaterThan(1);
    const [first] = ids;
    await store.delete(first!, { pool: listPool });
    expect(await store.count(listPool)).to.equal(249);
  });

  it('refuses bad input with typed errors and writes nothing', async () => {
    const before = await store.count(pool);
    await expectRejected(store.get('short', { pool }), InvalidSessionIdError);
    await expectRejected(store.get('../../etc/passwd-aaaaaaaaaaaaaaaaaaaa', { pool }), InvalidSessionIdError);
    await expectRejected(store.create({ pool, data: { f: (() => 1) as unknown as JsonValue } }), InvalidSessionDataError);
    await expectRejected(store.create({ pool, data: { n: NaN } }), InvalidSessionDataError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expectRejected(store.create({ pool, data: cyclic as JsonValue }), InvalidSessionDataError);
    await expectRejected(store.create({ pool, data: 'x'.repeat(1024 * 1024 + 1) }), SessionTooLargeError);
    await expectRejected(store.create({ pool, ttlSeconds: 0 }), InvalidTtlError);
    await expectRejected(store.create({ pool, ttlSeconds: 1.5 }), InvalidTtlError);
    await expectRejected(store.create({ pool, ttlSeconds: -3 }), InvalidTtlError);
    const s = await store.create({ pool });
    await expectRejected(store.update(s.id, { big: 'x'.repeat(1024 * 1024) }, { pool, expectedVersion: 1 }), SessionTooLargeError);
    expect((await store.get(s.id, { pool }))?.version).to.equal(1);
    expect(await store.count(pool)).to.equal(before + 1);
  });

  it('runs anonymous sessions: never shared under concurrency, always deleted', async () => {
    const anonPool = 'pool-anon';
    const seen = new Set<string>();
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        store.withAnonymousSession(anonPool, async (session) => {
          expect(seen.has(session.id)).to.equal(false);
          seen.add(session.id);
          expect(session.anonymous).to.equal(true);
          expect(session.ttlSeconds).to.equal(300);
          await store.update(session.id, { i }, { pool: anonPool, expectedVersion: 1 });
          await new Promise((r) => setTimeout(r, Math.random() * 10));
          expect((await store.get(session.id, { pool: anonPool }))?.data).to.deep.equal({ i });
          if (i % 5 === 0) throw new Error(`work ${i} failed`);
          return i;
        }),
      ),
    );
    expect(seen.size).to.equal(50);
    expect(results.filter((r) => r.status === 'rejected')).to.have.length(10);
    expect(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))).to.have.length(40);
    for (const id of seen) expect(await store.exists(id, { pool: anonPool })).to.equal(false);
    expect(await store.count(anonPool)).to.equal(0);
    const failing = testStore(prefix, {
      nodes: ['127.0.0.1:1'],
      retry: { maxAttempts: 1 },
      degraded: { enabled: false },
      clusterOptions: { clusterRetryStrategy: () => null },
    });
    try {
      await expectRejected(
        failing.store.withAnonymousSession(anonPool, async () => 1),
        AnonymousSessionError,
      );
    } finally {
      await failing.store.close();
    }
  });

  it('claims, renews and releases leases; each owner change grows the epoch', async () => {
    const s = await store.create({ pool });
    const lease = await store.claim(s.id, 'worker-a', { pool, leaseMs: 5_000 });
    expect(lease).to.include({ sessionId: s.id, owner: 'worker-a', epoch: 1 });
    expect(await store.listByOwner(pool, 'worker-a')).to.include(s.id);
    const again = await store.claim(s.id, 'worker-a', { pool, leaseMs: 5_000 });
    expect(again.epoch).to.equal(1);
    await expectRejected(store.claim(s.id, 'worker-b', { pool }), SessionOwnedError);
    expect(await store.listByOwner(pool, 'worker-b')).to.not.include(s.id);
    const renewed = await store.renew(lease, 10_000);
    expect(renewed.expiresAt).to.be.greaterThan(lease.expiresAt);
    // fenced writes: right epoch passes, wrong epoch or owner is refused
    const u = await store.update(s.id, { ok: 1 }, { pool, expectedVersion: 1, fence: { epoch: 1, owner: 'worker-a' } });
    expect(u.version).to.equal(2);
    await expectRejected(store.update(s.id, { late: 1 }, { pool, expectedVersion: 2, fence: { epoch: 0 } }), FencedError);
    await expectRejected(
      store.update(s.id, { late: 1 }, { pool, expectedVersion: 2, fence: { epoch: 1, owner: 'worker-b' } }),
      FencedError,
    );
    await store.release(renewed);
    const after = await store.get(s.id, { pool });
    expect(after).to.include({ owner: null, epoch: 2 });
    expect(await store.listByOwner(pool, 'worker-a')).to.not.include(s.id);
    await expectRejected(store.renew(renewed), LeaseLostError);
    // lapsed lease: another owner may claim
    const short = await store.claim(s.id, 'worker-a', { pool, leaseMs: 50 });
    await new Promise((r) => setTimeout(r, 80));
    const taken = await store.claim(s.id, 'worker-b', { pool });
    expect(taken.epoch).to.equal(short.epoch + 1);
    expect(await store.listByOwner(pool, 'worker-a')).to.not.include(s.id);
    expect(await store.listByOwner(pool, 'worker-b')).to.include(s.id);
    // the old owner's late write is fenced
    await expectRejected(
      store.update(s.id, { late: 2 }, { pool, expectedVersion: 2, fence: { epoch: short.epoch, owner: 'worker-a' } }),
      FencedError,
    );
  });

  it('moves owners in a batch with a CAS on owner and epoch, and keeps the owner indexes', async () => {
    const movePool = 'pool-move';
    const sessions = await Promise.all(Array.from({ length: 30 }, () => store.create({ pool: movePool, owner: 'pod-1' })));
    expect(sessions[0]).to.include({ owner: 'pod-1', epoch: 1 });
    expect((await store.listByOwner(movePool, 'pod-1')).length).to.equal(30);
    const stale = sessions[0]!;
    await store.claim(stale.id, 'pod-1', { pool: movePool }); // same owner: epoch unchanged
    const moves = sessions.map((s, i) => ({ sessionId: s.id, fromOwner: 'pod-1', fromEpoch: i === 1 ? 7 : 1, toOwner: 'pod-2' }));
    moves.push({ sessionId: 'gone'.padEnd(32, 'g'), fromOwner: 'pod-1', fromEpoch: 1, toOwner: 'pod-2' });
    const outcomes = await store.moveOwners(movePool, moves);
    expect(outcomes.filter((o) => o.status === 'moved')).to.have.length(29);
    expect(outcomes[1]).to.deep.equal({ sessionId: sessions[1]!.id, status: 'conflict', owner: 'pod-1', epoch: 1 });
    expect(outcomes[30]).to.deep.include({ status: 'missing' });
    expect(outcomes[0]).to.deep.equal({ sessionId: stale.id, status: 'moved', epoch: 2 });
    expect((await store.listByOwner(movePool, 'pod-2')).length).to.equal(29);
    expect(await store.listByOwner(movePool, 'pod-1')).to.deep.equal([sessions[1]!.id]);
    const counts = await store.countByOwner(movePool);
    expect(counts.get('pod-2')).to.equal(29);
    expect(counts.get('pod-1')).to.equal(1);
    expect(counts.get('')).to.equal(0);
    // the old owner's late write (epoch 1) is refused after the move
    await expectRejected(
      store.update(stale.id, { late: true }, { pool: movePool, expectedVersion: 1, fence: { epoch: 1, owner: 'pod-1' } }),
      FencedError,
    );
    // moving to nobody
    const [toNone] = await store.moveOwners(movePool, [{ sessionId: stale.id, fromOwner: 'pod-2', fromEpoch: 2, toOwner: null }]);
    expect(toNone).to.deep.equal({ sessionId: stale.id, status: 'moved', epoch: 3 });
    expect((await store.countByOwner(movePool)).get('')).to.equal(1);
  });

  it('marks sessions moving: fenced writes and foreign claims are refused, unfenced writes pass', async () => {
    const s = await store.create({ pool, owner: 'pod-x' });
    await store.setMoving(pool, [s.id], 'mig-1');
    expect((await store.get(s.id, { pool }))?.movingBy).to.equal('mig-1');
    await expectRejected(
      store.update(s.id, { w: 1 }, { pool, expectedVersion: 1, fence: { epoch: 1, owner: 'pod-x' } }),
      SessionMovingError,
    );
    await expectRejected(store.claim(s.id, 'pod-y', { pool, leaseMs: 10 }), SessionMovingError);
    const unfenced = await store.update(s.id, { op: 1 }, { pool, expectedVersion: 1 });
    expect(unfenced.version).to.equal(2);
    await store.setMoving(pool, [s.id], null);
    expect((await store.get(s.id, { pool }))?.movingBy).to.equal(null);
    const fenced = await store.update(s.id, { w: 2 }, { pool, expectedVersion: 2, fence: { epoch: 1 } });
    expect(fenced.version).to.equal(3);
  });

  it('registers workers with a heartbeat TTL, marks them draining and unregisters them', async () => {
    const wpool = 'pool-workers';
    await store.registerWorker({ pool: wpool, worker: 'w-1', endpoint: '10.0.0.1:8080', draining: false }, 10_000);
    await store.registerWorker({ pool: wpool, worker: 'w-2', endpoint: '10.0.0.2:8080', draining: false }, 50);
    expect((await store.listWorkers(wpool)).map((w) => w.worker)).to.deep.equal(['w-1', 'w-2']);
    await new Promise((r) => setTimeout(r, 80));
    const live = await store.listWorkers(wpool);
    expect(live.map((w) => w.worker)).to.deep.equal(['w-1']);
    await store.setWorkerDraining(wpool, 'w-1', true);
    expect((await store.listWorkers(wpool))[0]).to.include({ worker: 'w-1', endpoint: '10.0.0.1:8080', draining: true });
    await store.unregisterWorker(wpool, 'w-1');
    expect(await store.listWorkers(wpool)).to.deep.equal([]);
  });

  it('imports a session keeping its id, version and createdAt, only when absent, with indexes', async () => {
    const ipool = 'pool-import';
    const id = newSessionId();
    const createdAt = Date.now() - 60_000;
    const first = await store.importSession({ id, pool: ipool, data: { n: 7 }, version: 5, createdAt, ttlSeconds: 600, owner: 'pod-i' });
    expect(first.created).to.equal(true);
    expect(first.record).to.include({
      id,
      pool: ipool,
      version: 5,
      createdAt,
      ttlSeconds: 600,
      anonymous: false,
      owner: 'pod-i',
      epoch: 1,
    });
    expect(first.record.data).to.deep.equal({ n: 7 });
    expect(first.record.lastAccessedAt).to.be.at.least(createdAt + 60_000 - 1000);
    expect(await store.core.redis.pttl(store.core.keys.session(ipool, id))).to.be.within(590_000, 600_000);
    expect(await store.count(ipool)).to.equal(1);
    expect(await store.listByOwner(ipool, 'pod-i')).to.deep.equal([id]);
    expect(await store.core.redis.zscore(store.core.keys.leaseIndex(ipool, indexBucket(id)), id)).to.not.equal(null);
    // Reads and versioned writes continue from the imported version; the lease is the owner's.
    const read = await store.get(id, { pool: ipool });
    expect(read).to.include({ version: 5, createdAt });
    const written = await store.update(id, { n: 8 }, { pool: ipool, expectedVersion: 5, fence: { epoch: 1, owner: 'pod-i' } });
    expect(written.version).to.equal(6);

    // Present already: nothing written, the existing record returned, no owner-index entry added for the other owner.
    const again = await store.importSession({ id, pool: ipool, data: { n: 0 }, version: 1, createdAt: 1, owner: 'pod-j' });
    expect(again.created).to.equal(false);
    expect(again.record).to.include({ version: 6, pool: ipool, owner: 'pod-i' });
    expect(again.record.data).to.deep.equal({ n: 8 });
    expect(await store.listByOwner(ipool, 'pod-j')).to.deep.equal([]);
    const sameOwnerless = await store.importSession({ id, pool: ipool, data: {}, version: 1, createdAt: 1, owner: null });
    expect(sameOwnerless.created).to.equal(false);
    expect(await store.count(ipool)).to.equal(1);

    // Unowned and anonymous imports; concurrent imports of one id: exactly one creates.
    const id2 = newSessionId();
    const racers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.importSession({ id: id2, pool: ipool, data: { i }, version: 3, createdAt, anonymous: true }),
      ),
    );
    expect(racers.filter((r) => r.created)).to.have.length(1);
    const winner = racers.find((r) => r.created)!.record;
    expect(winner).to.include({ owner: null, epoch: 0, anonymous: true, ttlSeconds: 300, version: 3 });
    for (const r of racers) expect(r.record.data).to.deep.equal(winner.data);
    expect(await store.count(ipool)).to.equal(2);
  });

  it('validates imports like create and writes nothing for bad input', async () => {
    const ipool = 'pool-import-bad';
    const id = newSessionId();
    const base = { id, pool: ipool, data: {}, version: 1, createdAt: Date.now() };
    await expectRejected(store.importSession({ ...base, id: 'short' }), InvalidSessionIdError);
    await expectRejected(store.importSession({ ...base, pool: 'bad pool' }), InvalidNameError);
    await expectRejected(store.importSession({ ...base, owner: '{x}' }), InvalidNameError);
    await expectRejected(store.importSession({ ...base, ttlSeconds: 0 }), InvalidTtlError);
    await expectRejected(store.importSession({ ...base, ttlSeconds: 1.5 }), InvalidTtlError);
    await expectRejected(store.importSession({ ...base, version: 0 }), InvalidArgumentError);
    await expectRejected(store.importSession({ ...base, createdAt: -1 }), InvalidArgumentError);
    await expectRejected(store.importSession({ ...base, data: { f: NaN } }), InvalidSessionDataError);
    await expectRejected(store.importSession({ ...base, data: { big: 'x'.repeat(1024 * 1024) } }), SessionTooLargeError);
    expect(await store.exists(id, { pool })).to.equal(false);
    expect(await store.count(ipool)).to.equal(0);
  });

  it('keeps a draining flag set by the operator when the worker heartbeats with draining false', async () => {
    const wpool = 'pool-workers-drain';
    await store.registerWorker({ pool: wpool, worker: 'w-1', endpoint: '10.0.0.1:8080', draining: false }, 10_000);
    // The worker reads (not draining), the operator sets draining, then the worker's heartbeat lands.
    expect((await store.listWorkers(wpool))[0]?.draining).to.equal(false);
    await store.setWorkerDraining(wpool, 'w-1', true);
    await store.registerWorker({ pool: wpool, worker: 'w-1', endpoint: '10.0.0.9:8080', draining: false }, 10_000);
    expect((await store.listWorkers(wpool))[0]).to.include({ worker: 'w-1', endpoint: '10.0.0.9:8080', draining: true });
    // Heartbeats race with the operator's call: none of them clears it.
    await Promise.all([
      ...Array.from({ length: 10 }, () => store.registerWorker({ pool: wpool, worker: 'w-2', endpoint: 'e2:1', draining: false }, 10_000)),
      store
        .registerWorker({ pool: wpool, worker: 'w-2', endpoint: 'e2:1', draining: false }, 10_000)
        .then(() => store.setWorkerDraining(wpool, 'w-2', true)),
    ]);
    await store.registerWorker({ pool: wpool, worker: 'w-2', endpoint: 'e2:1', draining: false }, 10_000);
    expect((await store.listWorkers(wpool)).find((w) => w.worker === 'w-2')?.draining).to.equal(true);
    // Only setWorkerDraining(false) clears it; a worker may still set it itself.
    await store.setWorkerDraining(wpool, 'w-1', false);
    await store.registerWorker({ pool: wpool, worker: 'w-1', endpoint: '10.0.0.9:8080', draining: false }, 10_000);
    expect((await store.listWorkers(wpool))[0]?.draining).to.equal(false);
    await store.registerWorker({ pool: wpool, worker: 'w-1', endpoint: '10.0.0.9:8080', draining: true }, 10_000);
    expect((await store.listWorkers(wpool))[0]?.draining).to.equal(true);
    // A lapsed registration's flag does not carry over to a new registration under the same name.
    await store.registerWorker({ pool: wpool, worker: 'w-3', endpoint: 'e3:1', draining: true }, 30);
    await new Promise((r) => setTimeout(r, 50));
    await store.registerWorker({ pool: wpool, worker: 'w-3', endpoint: 'e3:1', draining: false }, 10_000);
    expect((await store.listWorkers(wpool)).find((w) => w.worker === 'w-3')?.draining).to.equal(false);
  });

  it('counts operations and latencies in prom-client metrics', async () => {
    expect(await metricValue(registry, 'spo_store_operations_total', { op: 'create', result: 'ok' })).to.be.greaterThan(0);
    expect(await metricValue(registry, 'spo_store_operations_total', { op: 'get', result: 'INVALID_SESSION_ID' })).to.be.greaterThan(0);
    const text = await registry.metrics();
    expect(text).to.include('spo_store_operation_duration_seconds_bucket');
  });
});
