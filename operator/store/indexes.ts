// A pool's indexes are split over INDEX_BUCKETS hash tags (`{pool:<pool>#<b>}`, keys.ts): a session's
// pool-index, lease-index and owner-index entries all live in bucket indexBucket(id), so the index steps
// of creates, deletes and claims spread over the masters. Writers group ids by bucket; readers walk
// every bucket. The readers here are what other parts (the pool controller, migrations) list and
// count a pool's sessions with.
import type { StoreCore } from './core.ts';
import { INDEX_BUCKETS, assertName, assertPoolId, indexBucket } from './keys.ts';
import { ensureIndexLayout } from './index-layout.ts';
import { InvalidArgumentError } from './errors.ts';
import { scripts } from './lua.ts';
import { H } from './codec.ts';

/** 0 .. INDEX_BUCKETS - 1. */
export const BUCKETS: readonly number[] = Array.from({ length: INDEX_BUCKETS }, (_, b) => b);

/** Items grouped by the index bucket of their session id. */
export function byBucket<T>(items: readonly T[], idOf: (item: T) => string): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const bucket = indexBucket(idOf(item));
    const list = groups.get(bucket);
    if (list) list.push(item);
    else groups.set(bucket, [item]);
  }
  return groups;
}

/** Number of entries in the pool index (every bucket). */
export async function countPoolIndex(core: StoreCore, pool: string): Promise<number> {
  await ensureIndexLayout(core, pool);
  const counts = await core.exec('count', () => Promise.all(BUCKETS.map((b) => core.redis.zcard(core.keys.poolIndex(pool, b)))));
  return counts.reduce((sum, n) => sum + n, 0);
}

/**
 * The ids of `owner`'s sessions in `pool` (every bucket of its owner index). Exported for callers that
 * read the indexes directly (SessionStore.listByOwner is this).
 */
export async function listOwnerIndex(core: StoreCore, pool: string, owner: string): Promise<string[]> {
  assertPoolId(pool);
  assertName('owner', owner);
  await ensureIndexLayout(core, pool);
  const lists = await core.exec('listByOwner', () =>
    Promise.all(BUCKETS.map((b) => core.redis.smembers(core.keys.ownerIndex(pool, owner, b)))),
  );
  return lists.flat();
}

/**
 * One page of the pool index: ZSCAN of one bucket at a time. The cursor is `<bucket>.<ZSCAN cursor>`
 * (`null` when every bucket was read); a page may be short, or empty, before the end.
 */
export async function listPoolIndex(
  core: StoreCore,
  pool: string,
  cursor: string | null,
  limit: number,
): Promise<{ ids: string[]; cursor: string | null }> {
  await ensureIndexLayout(core, pool);
  let [bucket, scan] = parseCursor(cursor);
  const ids = new Set<string>();
  while (bucket < INDEX_BUCKETS && ids.size < limit) {
    const [next, flat] = await core.exec('list', () =>
      core.redis.zscan(core.keys.poolIndex(pool, bucket), scan, 'COUNT', Math.max(1, limit - ids.size)),
    );
    for (let i = 0; i < flat.length; i += 2) ids.add(flat[i]!);
    if (next === '0') {
      bucket++;
      scan = '0';
    } else scan = next;
  }
  return { ids: [...ids], cursor: bucket >= INDEX_BUCKETS ? null : `${bucket}.${scan}` };
}

/** Every id in the pool index, all pages (for tools and migrations that need the whole list). */
export async function listPoolSessions(core: StoreCore, pool: string): Promise<string[]> {
  assertPoolId(pool);
  const all: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await listPoolIndex(core, pool, cursor, 1000);
    all.push(...page.ids);
    cursor = page.cursor;
  } while (cursor !== null);
  return [...new Set(all)];
}

const CURSOR = /^(\d{1,2})\.(\d{1,20})$/;

function parseCursor(cursor: string | null): [number, string] {
  if (cursor === null || cursor === '0') return [0, '0'];
  const match = CURSOR.exec(cursor);
  const bucket = Number(match?.[1]);
  if (!match || bucket >= INDEX_BUCKETS) throw new InvalidArgumentError('invalid list cursor');
  return [bucket, match[2]!];
}

/** Counts per owner from the owner indexes; unowned ('') is the pool count less the owned. One script per
 *  bucket (COUNT_BUCKET: its pool-index size, and each owner's index size). */
export async function countOwnerIndexes(core: StoreCore, pool: string): Promise<Map<string, number>> {
  assertPoolId(pool);
  await ensureIndexLayout(core, pool);
  const { keys } = core;
  const replies = await Promise.all(
    BUCKETS.map((b) =>
      core.script('countByOwner', scripts.countBucket, [keys.poolIndex(pool, b), keys.owners(pool, b)], [keys.ownerIndex(pool, '', b)]),
    ),
  );
  const result = new Map<string, number>();
  let total = 0;
  let owned = 0;
  for (const reply of replies) {
    const parts = Array.isArray(reply) ? reply : [];
    total += Number(parts[0] ?? 0);
    for (let i = 1; i + 1 < parts.length; i += 2) {
      const owner = String(parts[i]);
      const n = Number(parts[i + 1]);
      if (n > 0) result.set(owner, (result.get(owner) ?? 0) + n);
      owned += n;
    }
  }
  result.set('', Math.max(0, total - owned));
  return result;
}

// ---- writers: one command per bucket (and owner), sent together --------------------------------

/** SADD each id to its owner's index in its bucket, and the owner to that bucket's owner list. */
export function addToOwnerIndexes(core: StoreCore, pool: string, entries: readonly { owner: string; id: string }[]): Promise<unknown>[] {
  const { keys, redis } = core;
  const steps: Promise<unknown>[] = [];
  const ownersOf = new Map<number, Set<string>>();
  for (const [owner, buckets] of byOwnerAndBucket(entries)) {
    for (const [b, ids] of buckets) {
      steps.push(redis.sadd(keys.ownerIndex(pool, owner, b), ...ids));
      const owners = ownersOf.get(b);
      if (owners) owners.add(owner);
      else ownersOf.set(b, new Set([owner]));
    }
  }
  for (const [b, owners] of ownersOf) steps.push(redis.sadd(keys.owners(pool, b), ...owners));
  return steps;
}

/** SREM each id from its owner's index in its bucket. */
export function removeFromOwnerIndexes(
  core: StoreCore,
  pool: string,
  entries: readonly { owner: string; id: string }[],
): Promise<unknown>[] {
  const { keys, redis } = core;
  const steps: Promise<unknown>[] = [];
  for (const [owner, buckets] of byOwnerAndBucket(entries)) {
    for (const [b, ids] of buckets) steps.push(redis.srem(keys.ownerIndex(pool, owner, b), ...ids));
  }
  return steps;
}

/**
 * Removes entries from their owners' indexes where the caller found the session not the owner's, then
 * reads each session's header once more and adds back the entries whose owner holds it by now: a claim
 * or move to that owner adds its entry before its compare-and-swap, so it may have landed between the
 * caller's read and the removal, and an index must never name too little. Resolves to the number of
 * entries that stay removed (SREM's count: an entry may have left already).
 */
export async function removeUnlessOwned(core: StoreCore, pool: string, entries: readonly { owner: string; id: string }[]): Promise<number> {
  const { keys, redis } = core;
  let removed = 0;
  const steps = [...byOwnerAndBucket(entries)].flatMap(([owner, buckets]) =>
    [...buckets].map(async ([b, ids]) => {
      const key = keys.ownerIndex(pool, owner, b);
      const gone = await redis.srem(key, ...ids);
      const headers = await Promise.all(ids.map((id) => core.headerParts(pool, id)));
      const owned = ids.filter((_, i) => headers[i]?.[H.own] === owner);
      if (owned.length > 0) await redis.sadd(key, ...owned);
      removed += Math.max(0, gone - owned.length);
    }),
  );
  await Promise.all(steps);
  return removed;
}

/** ZADD lease expiries (score) to the lease index, one command per bucket. */
export function scoreLeases(core: StoreCore, pool: string, entries: readonly { id: string; expiresAt: number }[]): Promise<unknown>[] {
  const { keys, redis } = core;
  return [...byBucket(entries, (e) => e.id)].map(([b, list]) =>
    redis.zadd(keys.leaseIndex(pool, b), ...list.flatMap((e) => [e.expiresAt, e.id])),
  );
}

/** ZREM ids from the lease index, one command per bucket. */
export function dropLeases(core: StoreCore, pool: string, ids: readonly string[]): Promise<unknown>[] {
  const { keys, redis } = core;
  return [...byBucket(ids, (id) => id)].map(([b, list]) => redis.zrem(keys.leaseIndex(pool, b), ...list));
}

/** Ids by owner, then by index bucket: one bucket computation per entry, one key per (owner, bucket). */
function byOwnerAndBucket(entries: readonly { owner: string; id: string }[]): Map<string, Map<number, string[]>> {
  const groups = new Map<string, Map<number, string[]>>();
  for (const { owner, id } of entries) {
    let buckets = groups.get(owner);
    if (!buckets) groups.set(owner, (buckets = new Map<number, string[]>()));
    const b = indexBucket(id);
    const list = buckets.get(b);
    if (list) list.push(id);
    else buckets.set(b, [id]);
  }
  return groups;
}
