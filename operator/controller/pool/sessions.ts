// Store-side work of the pool reconciler: reading counts, releasing the sessions of dead
// workers, and deleting a pool's sessions on deletion. Plain functions over SessionStore.
import type { SessionStore } from '../../store/index.ts';
import type { WorkerRegistration } from '../../store/types.ts';

export interface StoreCounts {
  active: number;
  anonymous?: number;
  byOwner: Map<string, number>;
  registered: string[];
  /** The registrations themselves (endpoints, draining): whom the operator's admin calls go to. */
  workers: WorkerRegistration[];
}

/** A store that can also count anonymous sessions (not in the SessionStore contract yet). */
interface AnonymousCounter {
  countAnonymous(pool: string): Promise<number>;
}

function hasAnonymousCount(store: SessionStore): store is SessionStore & AnonymousCounter {
  return typeof (store as Partial<AnonymousCounter>).countAnonymous === 'function';
}

export async function readCounts(store: SessionStore, pool: string): Promise<StoreCounts> {
  const [active, byOwner, workers, anonymous] = await Promise.all([
    store.count(pool),
    store.countByOwner(pool),
    store.listWorkers(pool),
    hasAnonymousCount(store) ? store.countAnonymous(pool) : Promise.resolve(undefined),
  ]);
  const counts: StoreCounts = { active, byOwner, registered: workers.map((w) => w.worker), workers };
  if (anonymous !== undefined) counts.anonymous = anonymous;
  return counts;
}

/**
 * Owners (registered workers or session owners) that have no live pod. A worker whose pod is
 * terminating and that is still registered is draining, not dead: it finishes its requests, writes the
 * sessions in its memory to the store and releases its leases itself, then unregisters, and is dead
 * from then on (or once its registration lapses, if its node is lost). Releasing it earlier dropped
 * its registration while sessions were still in its memory only, where its peers no longer looked.
 */
export function deadWorkers(counts: StoreCounts, livePods: ReadonlySet<string>, terminatingPods: ReadonlySet<string>): string[] {
  const registered = new Set(counts.registered);
  const owners = new Set<string>(counts.registered);
  for (const [owner, n] of counts.byOwner) if (owner !== '' && n > 0) owners.add(owner);
  return [...owners].filter((o) => !livePods.has(o) && !(terminatingPods.has(o) && registered.has(o))).sort();
}

export interface ReleaseResult {
  released: number;
  conflicts: number;
}

/**
 * Makes the dead worker's sessions unowned (compare-and-swap on owner and epoch, so a session
 * that a live worker claimed meanwhile is left alone), then drops its registration. The next
 * worker that serves an unowned session claims it.
 */
export async function releaseWorker(store: SessionStore, pool: string, worker: string, batchSize = 200): Promise<ReleaseResult> {
  const ids = await store.listByOwner(pool, worker);
  let released = 0;
  let conflicts = 0;
  for (let i = 0; i < ids.length; i += batchSize) {
    const batch = ids.slice(i, i + batchSize);
    const records = await Promise.all(batch.map((id) => store.get(id, { pool, touch: false })));
    const moves = records
      .filter((r) => r !== null && r.owner === worker)
      .map((r) => ({ sessionId: r!.id, fromOwner: worker, fromEpoch: r!.epoch, toOwner: null }));
    if (moves.length === 0) continue;
    const outcomes = await store.moveOwners(pool, moves);
    for (const outcome of outcomes) {
      if (outcome.status === 'moved') released++;
      else if (outcome.status === 'conflict') conflicts++;
    }
  }
  await store.unregisterWorker(pool, worker);
  return { released, conflicts };
}

/** Deletes every session of the pool (deletionPolicy Delete), and only those. Returns how many were deleted. */
export async function deleteAllSessions(store: SessionStore, pool: string, batchSize = 200): Promise<number> {
  let deleted = 0;
  // A scan pass can miss entries added meanwhile: pass again until the pool is empty or a
  // whole pass deletes nothing (what remains is then being recreated by a live writer).
  for (let pass = 0; pass < 10; pass++) {
    let cursor: string | null = null;
    let deletedThisPass = 0;
    do {
      const page = await store.list(pool, { cursor, limit: batchSize });
      // Each delete names the pool, so its key is the pool's own: an index entry naming an id of another
      // pool (left by a crash or written by a foreign client) finds nothing of that pool and deletes nothing.
      const results = await Promise.all(page.ids.map((id) => store.delete(id, { pool })));
      deletedThisPass += results.filter(Boolean).length;
      cursor = page.cursor;
    } while (cursor !== null);
    deleted += deletedThisPass;
    if ((await store.count(pool)) === 0 || deletedThisPass === 0) break;
  }
  for (const worker of await store.listWorkers(pool)) await store.unregisterWorker(pool, worker.worker);
  return deleted;
}
