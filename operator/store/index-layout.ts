// Pools whose indexes were written before buckets (one slot `{pool:<pool>}`, owner indexes in
// `{pool:<pool>:owner:<owner>}`): their entries are moved into the buckets, the first time this process
// reads the pool's indexes and at every sweep (which also picks up entries a process of the older
// version writes during a rolling upgrade). Each batch is added to the buckets before it is removed
// from the old key, so a crash leaves an entry in both (an index naming too much, as everywhere),
// never in neither. See docs/store.md, "Index buckets".
import type { StoreCore } from './core.ts';
import { indexBucket } from './keys.ts';

const BATCH = 500;

/** Per store core, the pools whose old-layout keys this process already moved (or found absent). */
const checked = new WeakMap<StoreCore, Map<string, Promise<number>>>();

/** Moves the pool's old-layout index entries into the buckets, once per process and pool (concurrent
 *  callers share the move); a failure is forgotten, so the next reader tries again. */
export function ensureIndexLayout(core: StoreCore, pool: string): Promise<number> {
  let pools = checked.get(core);
  if (!pools) checked.set(core, (pools = new Map<string, Promise<number>>()));
  let pending = pools.get(pool);
  if (!pending) {
    pending = migrateLegacyIndexes(core, pool);
    pools.set(pool, pending);
    pending.catch(() => pools.delete(pool));
  }
  return pending;
}

/** Moves every entry of the pool's old-layout indexes into the buckets; returns how many entries moved. */
export async function migrateLegacyIndexes(core: StoreCore, pool: string): Promise<number> {
  const { keys, redis } = core;
  const legacy = keys.legacy;
  // The three keys share the slot `{pool:<pool>}`: one command.
  const present = await core.exec('indexLayout', () => redis.exists(legacy.poolIndex(pool), legacy.leaseIndex(pool), legacy.owners(pool)));
  if (present === 0) return 0;
  let moved = 0;
  moved += await drainSortedSet(core, legacy.poolIndex(pool), (b) => keys.poolIndex(pool, b));
  moved += await drainSortedSet(core, legacy.leaseIndex(pool), (b) => keys.leaseIndex(pool, b));
  const owners = await core.exec('indexLayout', () => redis.smembers(legacy.owners(pool)));
  for (const owner of owners) {
    const from = legacy.ownerIndex(pool, owner);
    let cursor = '0';
    do {
      const [next, ids] = await core.exec('indexLayout', () => redis.sscan(from, cursor, 'COUNT', BATCH));
      cursor = next;
      if (ids.length === 0) continue;
      const groups = group(ids);
      await core.exec('indexLayout', () =>
        Promise.all(
          [...groups].flatMap(([b, list]) => [
            redis.sadd(keys.ownerIndex(pool, owner, b), ...list),
            redis.sadd(keys.owners(pool, b), owner),
          ]),
        ),
      );
      await core.exec('indexLayout', () => redis.srem(from, ...ids));
      moved += ids.length;
    } while (cursor !== '0');
    // Forget the owner only once its old index is empty (an older process may have added to it meanwhile).
    if ((await core.exec('indexLayout', () => redis.scard(from))) === 0) {
      await core.exec('indexLayout', () => redis.srem(legacy.owners(pool), owner));
    }
  }
  if (moved > 0) core.logger.info({ pool, entries: moved }, 'index entries of the single-slot layout moved into buckets');
  return moved;
}

/** Moves a sorted set's entries into the buckets (ZADD GT: a later score already there wins). */
async function drainSortedSet(core: StoreCore, from: string, to: (bucket: number) => string): Promise<number> {
  const { redis } = core;
  let moved = 0;
  for (;;) {
    const flat = await core.exec('indexLayout', () => redis.zrange(from, '0', String(BATCH - 1), 'WITHSCORES'));
    if (flat.length === 0) return moved;
    const byBucket = new Map<number, string[]>();
    const ids: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i]!;
      ids.push(id);
      const b = indexBucket(id);
      const list = byBucket.get(b) ?? [];
      list.push(flat[i + 1]!, id);
      byBucket.set(b, list);
    }
    await core.exec('indexLayout', () => Promise.all([...byBucket].map(([b, args]) => redis.zadd(to(b), 'GT', ...args))));
    await core.exec('indexLayout', () => redis.zrem(from, ...ids));
    moved += ids.length;
  }
}

function group(ids: string[]): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    const b = indexBucket(id);
    const list = groups.get(b);
    if (list) list.push(id);
    else groups.set(b, [id]);
  }
  return groups;
}
