// The owner indexes under concurrent moves and sweeps: an index may name too much for a while (the
// sweep repairs it), never too little. countByOwner, listByOwner (what evacuations list) and the
// pool's status.sessionsPerWorker read these indexes, so an owned session missing from its owner's
// index is a session an evacuation would not move and a count that is short.
import { expect } from 'chai';
import type { RedisSessionStore } from './index.ts';
import { testStore, uniquePrefix } from './test-helpers.int.ts';

const OWNERS = ['pod-a', 'pod-b', 'pod-c', 'pod-d'];

/** The owner each session's header names (the truth the indexes follow). */
async function headerOwners(store: RedisSessionStore, pool: string, ids: string[]): Promise<Map<string, string | null>> {
  const states = await store.readOwners(pool, ids);
  return new Map(ids.map((id) => [id, states.get(id)?.owner ?? null]));
}

/** Sessions whose header names an owner whose index does not name them. */
async function missingFromIndexes(store: RedisSessionStore, pool: string, ids: string[]): Promise<string[]> {
  const truth = await headerOwners(store, pool, ids);
  const indexes = new Map(await Promise.all(OWNERS.map(async (o) => [o, new Set(await store.listByOwner(pool, o))] as const)));
  // Read the headers again: a session counts as missing only if it had the same owner before and after.
  const again = await headerOwners(store, pool, ids);
  return ids.filter((id) => {
    const owner = truth.get(id);
    return owner && again.get(id) === owner && !indexes.get(owner)?.has(id);
  });
}

describe('store: owner indexes under concurrent moves and sweeps', () => {
  it('never name too little: every owned session stays in its owner index and counted, while moves and sweeps race', async function () {
    this.timeout(60_000);
    const pool = 'pool-races';
    // Audit every entry on every sweep, so the audit meets the moves' in-flight windows as often as it can.
    const { store } = testStore(uniquePrefix('owner-races'), { sweepAuditSize: 10_000, sweepAuditGraceMs: 1_000 });
    try {
      // Few sessions per (owner, bucket): the owners' bucket indexes empty and fill again all the time.
      const sessions = await Promise.all(Array.from({ length: 40 }, (_, i) => store.create({ pool, owner: OWNERS[i % OWNERS.length]! })));
      const ids = sessions.map((s) => s.id);
      const until = Date.now() + 6_000;
      const problems: string[] = [];
      let moves = 0;
      let sweeps = 0;
      // Each mover its own half of the sessions: the race under test is the sweep's with the moves.
      const mover = async (useMigrate: boolean) => {
        const mine = ids.filter((_, i) => i % 2 === (useMigrate ? 0 : 1));
        for (let round = 0; Date.now() < until; round++) {
          const picked = mine.filter(() => Math.random() < 0.5);
          const states = await store.readOwners(pool, picked);
          const batch = [...states.values()].map((s) => {
            const others = OWNERS.filter((o) => o !== s.owner);
            return {
              sessionId: s.sessionId,
              fromOwner: s.owner,
              fromEpoch: s.epoch,
              toOwner: others[Math.floor(Math.random() * others.length)]!,
            };
          });
          const outcomes = useMigrate ? await store.migrateOwners(pool, batch, `mig-${round}`) : await store.moveOwners(pool, batch);
          moves += outcomes.filter((o) => o.status === 'moved').length;
        }
      };
      const sweeper = async () => {
        while (Date.now() < until) {
          await store.sweep(pool);
          sweeps++;
        }
      };
      const checker = async () => {
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, 200));
          const counts = await store.countByOwner(pool);
          // Too much is allowed meanwhile (add before, remove after); too little never.
          const truth = await headerOwners(store, pool, ids);
          const owned = [...truth.values()].filter((o) => o !== null).length;
          const counted = OWNERS.reduce((sum, o) => sum + (counts.get(o) ?? 0), 0);
          if (counted < owned) problems.push(`counted ${counted} of ${owned} owned`);
        }
      };
      await Promise.all([mover(true), mover(false), sweeper(), sweeper(), checker()]);
      expect(moves, 'moves applied').to.be.greaterThan(200);
      expect(sweeps, 'sweeps run').to.be.greaterThan(20);
      // Quiet now: nothing is in flight, so every owned session must be in its owner's index and counted.
      expect(await missingFromIndexes(store, pool, ids), 'owned sessions missing from their owner index').to.deep.equal([]);
      const counts = await store.countByOwner(pool);
      const truth = await headerOwners(store, pool, ids);
      for (const owner of OWNERS) {
        const owns = [...truth.values()].filter((o) => o === owner).length;
        expect(counts.get(owner) ?? 0, `${owner}'s count (owns ${owns})`).to.be.at.least(owns);
      }
      // And once the grace has passed, two sweeps leave the indexes exact.
      await new Promise((r) => setTimeout(r, 1_100));
      await store.sweep(pool);
      await new Promise((r) => setTimeout(r, 1_100));
      await store.sweep(pool);
      const settled = await store.countByOwner(pool);
      for (const owner of OWNERS) {
        const owns = [...truth.values()].filter((o) => o === owner).length;
        expect(settled.get(owner) ?? 0, `${owner}'s count after the audit`).to.equal(owns);
        expect((await store.listByOwner(pool, owner)).sort()).to.deep.equal(ids.filter((id) => truth.get(id) === owner).sort());
      }
      expect(problems, 'counts short while the moves ran').to.deep.equal([]);
    } finally {
      await store.close();
    }
  });
});
