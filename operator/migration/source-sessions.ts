// The sessions an evacuation moves, per source worker, from the owner indexes. An owner index may
// name a session its owner no longer holds, for a while (a move that stopped between its
// compare-and-swap and its index removal, e.g. an operator killed mid-batch, until the sweep's audit
// removes the entry), so two sources' indexes may name one session. Those few are read, and each is
// kept under the source that holds it (under none when neither does: it is not on a source).
import type { SessionStore } from '../store/types.ts';
import { storeOwnerOps } from './owner-ops.ts';

const READ_CONCURRENCY = 256;

export async function listSourceSessions(store: SessionStore, pool: string, sources: readonly string[]): Promise<Map<string, string[]>> {
  const bySource = new Map<string, string[]>();
  for (const source of [...sources].sort()) bySource.set(source, await store.listByOwner(pool, source));
  const listedBy = new Map<string, number>();
  for (const ids of bySource.values()) for (const id of ids) listedBy.set(id, (listedBy.get(id) ?? 0) + 1);
  const shared = [...listedBy].filter(([, n]) => n > 1).map(([id]) => id);
  if (shared.length === 0) return bySource;
  const owners = await storeOwnerOps(store, READ_CONCURRENCY).read(pool, shared);
  const sharedSet = new Set(shared);
  for (const [source, ids] of bySource)
    bySource.set(
      source,
      ids.filter((id) => !sharedSet.has(id) || owners.get(id)?.owner === source),
    );
  return bySource;
}

/** Sessions still owned by a source (its owner index may name sessions that left it: only real owners count). */
export async function leftOnSources(store: SessionStore, pool: string, sources: readonly string[]): Promise<number> {
  let left = 0;
  for (const source of sources) {
    const ids = await store.listByOwner(pool, source);
    if (ids.length === 0) continue;
    const records = await Promise.all(ids.map((id) => store.get(id, { pool, touch: false }).catch(() => null)));
    left += records.filter((r) => r?.owner === source).length;
  }
  return left;
}
