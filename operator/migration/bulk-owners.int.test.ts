// The migration's owner operations batched per master (bulk-owners.ts), on the real Redis Cluster:
// the same results as the store's own calls, one script call per master, and a session that its
// master cannot run in the call (a stale slot map, a corrupted value) served the store's way.
import { expect } from 'chai';
import { H } from '../store/codec.ts';
import { keySlot } from '../store/keys.ts';
import { newSessionId, type RedisSessionStore } from '../store/index.ts';
import { rewriteStored, testStore, uniquePrefix } from '../store/test-helpers.int.ts';
import { BulkOwnerOps } from './bulk-owners.ts';

describe('migration engine: owner operations batched per master', () => {
  const prefix = uniquePrefix('bulk');
  let store: RedisSessionStore;
  before(() => {
    // Without auto-pipelining: a test below gives the client a wrong slot map on purpose, and the slot refresh
    // its redirections start could land between a command's queueing and its pipeline's send, which failed
    // that pipeline (ioredis: "All keys in the pipeline should belong to the same slots allocation group").
    // Commands then go one by one through the cluster client; the batched calls are the same.
    ({ store } = testStore(prefix, { clusterOptions: { enableAutoPipelining: false, redisOptions: { enableAutoPipelining: false } } }));
  });
  after(() => store.close());

  it('reads, marks and moves 1,200 sessions over every master in script calls per master, with the store results', async () => {
    const pool = 'pool-bulk';
    const sessions = await Promise.all(Array.from({ length: 1200 }, () => store.create({ pool, owner: 'src', data: { n: 1 } })));
    const ids = sessions.map((s) => s.id);
    const masters = new Set(ids.map((id) => store.core.redis.slots[keySlot(store.core.keys.session(pool, id))]?.[0]));
    expect(masters.size, 'the sessions span every master').to.equal(store.core.redis.nodes('master').length);
    const ops = new BulkOwnerOps(store);
    const read = await ops.read(pool, [...ids, newSessionId()]);
    expect(read.size).to.equal(1200);
    expect(read.get(ids[0]!)).to.deep.equal({ owner: 'src', epoch: 1 });

    await ops.mark(pool, ids, 'mig-bulk');
    const marked = await store.readOwners(pool, ids);
    expect([...marked.values()].every((s) => s.movingBy === 'mig-bulk')).to.equal(true);

    const stale = ids[0]!;
    const moves = ids.map((id, i) => ({ sessionId: id, fromOwner: 'src', fromEpoch: id === stale ? 7 : 1, toOwner: `dst${i % 3}` }));
    const { outcomes, clearsMarks } = await ops.migrate(pool, moves, 'mig-bulk');
    expect(clearsMarks).to.equal(true);
    expect(outcomes.find((o) => o.sessionId === stale)).to.deep.equal({ sessionId: stale, status: 'conflict', owner: 'src', epoch: 1 });
    expect(outcomes.filter((o) => o.status === 'moved' && o.epoch === 2)).to.have.length(1199);
    expect(ops.alone, 'every session ran in a per-master call').to.equal(0);

    const after = await store.readOwners(pool, ids);
    expect(after.get(stale)).to.include({ owner: 'src', epoch: 1, movingBy: 'mig-bulk' });
    expect(after.get(ids[1]!)).to.include({ owner: 'dst1', epoch: 2, movingBy: null });
    expect((await store.listByOwner(pool, 'src')).sort()).to.deep.equal([stale]);
    const counts = await store.countByOwner(pool);
    expect((counts.get('dst0') ?? 0) + (counts.get('dst1') ?? 0) + (counts.get('dst2') ?? 0)).to.equal(1199);
    expect(await store.get(ids[5]!, { pool, touch: false })).to.include({ owner: 'dst2', epoch: 2 });
    expect((await store.get(ids[5]!, { pool, touch: false }))!.data).to.deep.equal({ n: 1 });
  });

  it('serves alone, the store way, a session whose master the slot map gets wrong, and quarantines a corrupted one', async () => {
    const pool = 'pool-alone';
    const sessions = await Promise.all(Array.from({ length: 40 }, () => store.create({ pool, owner: 'src' })));
    const ids = sessions.map((s) => s.id);
    const [misrouted, corrupted] = ids as [string, string];
    const { redis, keys } = store.core;
    await rewriteStored(redis, keys.session(pool, corrupted), (header) => void (header[H.ep] = 'x'));
    // A stale slot map: the client believes another master serves the misrouted session's slot.
    const slot = keySlot(keys.session(pool, misrouted));
    const real = redis.slots[slot]!;
    const other = redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` !== real[0])!;
    redis.slots[slot] = [`${other.options.host}:${other.options.port}`];
    const ops = new BulkOwnerOps(store);
    let read;
    try {
      read = await ops.read(pool, ids);
      await ops.mark(pool, ids, 'mig-alone');
    } finally {
      redis.slots[slot] = real;
    }
    expect(read.get(misrouted)).to.include({ owner: 'src', epoch: 1 });
    expect(read.has(corrupted), 'a corrupted session is not read').to.equal(false);
    expect(await redis.exists(keys.quarantine(pool, corrupted)), 'and is quarantined').to.equal(1);
    expect(ops.alone).to.be.greaterThan(0);
    expect((await store.readOwners(pool, [misrouted])).get(misrouted)).to.include({ movingBy: 'mig-alone' });

    redis.slots[slot] = [`${other.options.host}:${other.options.port}`];
    let outcomes;
    try {
      ({ outcomes } = await ops.migrate(
        pool,
        ids.map((id) => ({ sessionId: id, fromOwner: 'src', fromEpoch: 1, toOwner: 'dst' })),
        'mig-alone',
      ));
    } finally {
      redis.slots[slot] = real;
    }
    expect(outcomes.find((o) => o.sessionId === misrouted)).to.deep.equal({ sessionId: misrouted, status: 'moved', epoch: 2 });
    expect(outcomes.find((o) => o.sessionId === corrupted)).to.deep.equal({ sessionId: corrupted, status: 'missing' });
    expect(outcomes.filter((o) => o.status === 'moved')).to.have.length(39);
    expect((await store.listByOwner(pool, 'dst')).sort()).to.deep.equal(ids.filter((id) => id !== corrupted).sort());
    expect((await store.readOwners(pool, [misrouted])).get(misrouted)).to.include({ owner: 'dst', movingBy: null });
  });
});
