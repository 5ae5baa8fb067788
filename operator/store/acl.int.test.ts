// Per-pool Redis ACL users, on the TLS-only Redis Cluster of the integration tier: a user made
// with exactly aclRulesForPool() on every node runs a real worker process and the operator's
// store work for its pool (counts, sweep, owner moves, migration journal, delete) without one
// command or key refused (ACL LOG stays empty), and cannot read nor write another pool's keys
// (NOPERM), nor run any command outside the list.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { redisTlsTestEnv } from '../../e2e/harness/test-env.ts';
import { tlsClientOptions } from '../../e2e/harness/redis-cluster.ts';
import { deleteAllSessions, readCounts, releaseWorker } from '../controller/pool/sessions.ts';
import { MigrationJournal } from '../migration/journal.ts';
import { WorkerClient } from '../worker/client.ts';
import { WORKER_TEST_NAMESPACE, startWorkerProcess, type WorkerProcess } from '../worker/testing/worker-process.ts';
import { aclRulesForPool } from './acl.ts';
import { createSessionStore, keyLayout, poolIdentity, type RedisConnectionSettings } from './index.ts';
import { indexBucket } from './keys.ts';

const run = Date.now().toString(36);
const poolA = {
  name: `acl-a-${run}`,
  pool: poolIdentity(WORKER_TEST_NAMESPACE, `acl-a-${run}`),
  keyPrefix: `acl-a-${run}`,
  user: `spo-acl-a-${run}`,
  password: randomBytes(12).toString('hex'),
};
/** Pool A's name in another namespace, under A's key prefix: only the pool identity in the keys tells them apart. */
const poolC = {
  name: poolA.name,
  pool: poolIdentity('acl-other', poolA.name),
  keyPrefix: poolA.keyPrefix,
  user: `spo-acl-c-${run}`,
  password: randomBytes(12).toString('hex'),
};
const poolB = {
  name: `acl-b-${run}`,
  pool: poolIdentity(WORKER_TEST_NAMESPACE, `acl-b-${run}`),
  keyPrefix: `acl-b-${run}`,
  user: `spo-acl-b-${run}`,
  password: randomBytes(12).toString('hex'),
};

describe('per-pool Redis ACL users', function () {
  const env = () => redisTlsTestEnv();
  const pki = () => env().state.tls!;
  const tls = () => ({
    ca: readFileSync(pki().caCert, 'utf8'),
    cert: readFileSync(pki().clientCert, 'utf8'),
    key: readFileSync(pki().clientKey, 'utf8'),
    serverName: pki().serverName,
  });
  const connectionOf = (p: typeof poolA): RedisConnectionSettings => ({ username: p.user, password: p.password, tls: tls() });
  const storeOf = (p: typeof poolA, keyPrefix = p.keyPrefix) =>
    createSessionStore({
      nodes: env().endpoints,
      keyPrefix,
      connection: connectionOf(p),
      degraded: { enabled: false },
      retry: { maxAttempts: 1 },
    });
  /** Runs a command on every node as the default user (the test's admin). */
  const onEveryNode = async (...command: string[]): Promise<unknown[]> => {
    const answers: unknown[] = [];
    for (const node of env().state.nodes) {
      const client = new Redis({ host: env().state.host, port: node.port, tls: tlsClientOptions(env().state)!, lazyConnect: true });
      client.on('error', () => undefined);
      try {
        await client.connect();
        answers.push(await client.call(command[0]!, ...command.slice(1)));
      } finally {
        client.disconnect();
      }
    }
    return answers;
  };
  /** ACL LOG entries (denials) for a user, over every node. */
  const deniedFor = async (user: string): Promise<string[]> => {
    const logs = (await onEveryNode('ACL', 'LOG', '128')) as unknown[][];
    const denials: string[] = [];
    for (const entries of logs)
      for (const entry of entries as unknown[][]) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
        if (fields.get('username') === user) denials.push(`${String(fields.get('reason'))} ${String(fields.get('object'))}`);
      }
    return denials;
  };
  const workers: WorkerProcess[] = [];

  before(async () => {
    for (const p of [poolA, poolB, poolC]) await onEveryNode('ACL', 'SETUSER', p.user, ...aclRulesForPool(p));
    await onEveryNode('ACL', 'LOG', 'RESET');
  });

  after(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    for (const p of [poolA, poolB, poolC]) await onEveryNode('ACL', 'DELUSER', p.user);
  });

  it('a worker process runs under its pool user and serves sessions; nothing it sends is refused', async () => {
    const worker = await startWorkerProcess({
      pool: poolA.name,
      name: 'acl-w1',
      env: {
        SPO_REDIS_NODES: env().endpoints.join(','),
        SPO_KEY_PREFIX: poolA.keyPrefix,
        SPO_REDIS_USERNAME: poolA.user,
        SPO_REDIS_PASSWORD: poolA.password,
        SPO_REDIS_TLS: 'true',
        SPO_REDIS_TLS_CA_FILE: pki().caCert,
        SPO_REDIS_TLS_CERT_FILE: pki().clientCert,
        SPO_REDIS_TLS_KEY_FILE: pki().clientKey,
        SPO_REDIS_TLS_SERVER_NAME: pki().serverName,
      },
    });
    workers.push(worker);
    const client = new WorkerClient({ endpoints: [worker.base] });
    const session = await client.createSession({ who: 'a' });
    expect((await client.execute(session.id, 'incr', { key: 'n' })).result).to.deep.include({ value: 1 });
    expect((await client.getSession(session.id)).data).to.deep.include({ who: 'a' });
    expect(await client.executeAnonymous('incr', { key: 'n' })).to.deep.include({ value: 1 });
    await client.deleteSession(session.id);
    await worker.stop();
    expect(await deniedFor(poolA.user)).to.deep.equal([]);
  });

  it("the operator's store work for the pool runs under the same user: counts, owners, sweep, journal, delete", async () => {
    const store = storeOf(poolA);
    const journal = new MigrationJournal(store.core.redis, { prefix: poolA.keyPrefix, pool: poolA.pool });
    try {
      // The worker test before this one leaves no session behind; count from what is there anyway.
      const before = (await readCounts(store, poolA.pool)).active;
      const owned = await store.create({ pool: poolA.pool, data: { n: 1 }, owner: 'w-old' });
      const free = await store.create({ pool: poolA.pool, data: { n: 2 } });
      expect((await readCounts(store, poolA.pool)).active).to.equal(before + 2);
      await store.registerWorker({ pool: poolA.pool, worker: 'w-new', endpoint: '127.0.0.1:1', draining: false });
      await store.setWorkerDraining(poolA.pool, 'w-new', true);
      expect((await store.listWorkers(poolA.pool)).map((w) => w.worker)).to.deep.equal(['w-new']);
      const lease = await store.claim(free.id, 'w-new', { pool: poolA.pool });
      await store.release(await store.renew(lease));
      await journal.create({
        uid: `mig-${run}`,
        pool: poolA.pool,
        kind: 'Rebalance',
        onFailure: 'Rollback',
        summary: { totalSessions: 1, moves: [{ from: 'w-old', to: 'w-new', sessions: 1 }], omittedMoves: 0 },
        batchCount: 1,
        deadlineAt: Date.now() + 60_000,
      });
      await journal.savePlan(`mig-${run}`, [{ index: 0, moves: [{ from: 'w-old', to: 'w-new', sessionIds: [owned.id] }] }]);
      await store.setMoving(poolA.pool, [owned.id], `mig-${run}`);
      const [outcome] = await store.moveOwners(poolA.pool, [
        { sessionId: owned.id, fromOwner: 'w-old', fromEpoch: owned.epoch, toOwner: 'w-new' },
      ]);
      expect(outcome?.status).to.equal('moved');
      await store.setMoving(poolA.pool, [owned.id], null);
      await journal.transition(
        `mig-${run}`,
        { index: 0, state: 'moved', sessions: [{ id: owned.id, from: 'w-old', fromEpoch: owned.epoch, to: 'w-new' }] },
        { moved: 1 },
      );
      expect(await journal.listActive()).to.include(`mig-${run}`);
      await journal.setPhase(`mig-${run}`, 'Succeeded');
      expect((await journal.header(`mig-${run}`))?.moved).to.equal(1);
      expect(await store.listByOwner(poolA.pool, 'w-new')).to.deep.equal([owned.id]);
      await releaseWorker(store, poolA.pool, 'w-new');
      await store.sweep(poolA.pool);
      await store.unregisterWorker(poolA.pool, 'w-new');
      expect(await deleteAllSessions(store, poolA.pool)).to.equal(before + 2);
      await journal.remove(`mig-${run}`);
      expect(await deniedFor(poolA.user)).to.deep.equal([]);
    } finally {
      await store.close();
    }
  });

  it("cannot read nor write another pool's keys: NOPERM", async () => {
    const storeB = storeOf(poolB);
    const storeA = storeOf(poolA);
    // The same user reaching for pool B's keys through the store, with pool B's key prefix.
    const storeAOnB = storeOf(poolA, poolB.keyPrefix);
    try {
      const theirs = await storeB.create({ pool: poolB.pool, data: { secret: 'b' } });
      expect((await storeB.get(theirs.id, { pool: poolB.pool }))?.data).to.deep.equal({ secret: 'b' });
      const keysB = keyLayout(poolB.keyPrefix);
      const refused = async (work: Promise<unknown>) => {
        const error = await work.then(
          () => undefined,
          (e: unknown) => e,
        );
        const text = error instanceof Error ? `${error.message} ${error.cause instanceof Error ? error.cause.message : ''}` : String(error);
        expect(text).to.match(/NOPERM/);
      };
      await refused(storeA.core.redis.get(keysB.session(poolB.pool, theirs.id)));
      await refused(storeA.core.redis.set(keysB.session(poolB.pool, theirs.id), 'x'));
      await refused(storeA.core.redis.smembers(keysB.poolIndex(poolB.pool, indexBucket(theirs.id))));
      await refused(storeA.core.redis.hgetall(keysB.workers(poolB.pool)));
      await refused(storeAOnB.get(theirs.id, { pool: poolB.pool }));
      await refused(storeAOnB.delete(theirs.id, { pool: poolB.pool }));
      // Nor a command outside the list, on any key.
      await refused(storeA.core.redis.call('KEYS', '*'));
      await refused(storeA.core.redis.call('FLUSHALL'));
      // Pool B's session is untouched.
      expect((await storeB.get(theirs.id, { pool: poolB.pool }))?.data).to.deep.equal({ secret: 'b' });
      expect((await deniedFor(poolA.user)).length).to.be.greaterThan(0);
    } finally {
      await Promise.all([storeA.close(), storeB.close(), storeAOnB.close()]);
    }
  });

  it('cannot read nor write the sessions of another pool under the same key prefix: NOPERM', async () => {
    const storeC = storeOf(poolC);
    const storeA = storeOf(poolA);
    try {
      const theirs = await storeC.create({ pool: poolC.pool, data: { secret: 'c' }, owner: 'w-c' });
      const keys = keyLayout(poolA.keyPrefix);
      const refused = async (work: Promise<unknown>) => {
        const error = await work.then(
          () => undefined,
          (e: unknown) => e,
        );
        const text = error instanceof Error ? `${error.message} ${error.cause instanceof Error ? error.cause.message : ''}` : String(error);
        expect(text).to.match(/NOPERM/);
      };
      // Directly, on pool C's session, quarantine and index keys (same prefix as A's own).
      await refused(storeA.core.redis.get(keys.session(poolC.pool, theirs.id)));
      await refused(storeA.core.redis.set(keys.session(poolC.pool, theirs.id), 'x'));
      await refused(storeA.core.redis.del(keys.quarantine(poolC.pool, theirs.id)));
      await refused(storeA.core.redis.zrange(keys.poolIndex(poolC.pool, indexBucket(theirs.id)), '0', '-1'));
      await refused(storeA.core.redis.smembers(keys.ownerIndex(poolC.pool, 'w-c', indexBucket(theirs.id))));
      // Through the store, naming pool C: read, write, move, delete.
      await refused(storeA.get(theirs.id, { pool: poolC.pool }));
      await refused(storeA.update(theirs.id, { stolen: true }, { pool: poolC.pool, expectedVersion: 1 }));
      await refused(storeA.moveOwners(poolC.pool, [{ sessionId: theirs.id, fromOwner: 'w-c', fromEpoch: 1, toOwner: 'w-a' }]));
      await refused(storeA.delete(theirs.id, { pool: poolC.pool }));
      // Under its own pool, A finds no session of that id: the key is another.
      expect(await storeA.get(theirs.id, { pool: poolA.pool })).to.equal(null);
      // Pool C's session is untouched, and C's user is refused nothing.
      expect(await storeC.get(theirs.id, { pool: poolC.pool, touch: false })).to.deep.include({
        data: { secret: 'c' },
        version: 1,
        owner: 'w-c',
        epoch: 1,
      });
      expect(await storeC.delete(theirs.id, { pool: poolC.pool })).to.equal(true);
      expect(await deniedFor(poolC.user)).to.deep.equal([]);
    } finally {
      await Promise.all([storeA.close(), storeC.close()]);
    }
  });
});
