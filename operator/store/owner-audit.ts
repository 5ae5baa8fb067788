// The sweep's owner-index audit: removes the entries of an owner's index whose session is gone or
// owned by another. Writers add an owner's entry before the session step that makes it the owner
// (claim, move), so an entry whose header names another owner is also what every move in flight
// looks like. Removing such an entry on sight raced with them: the move's compare-and-swap could land
// just after, leaving an owned session out of its owner's index (counts short, an evacuation that
// does not list it). So an entry is removed only when it was seen stale twice, at least
// `sweepAuditGraceMs` apart, with the session's header unchanged in between (a move in flight changes
// the epoch when it lands, and none stays in flight that long: its retries end within seconds).
import type { StoreCore } from './core.ts';
import { H } from './codec.ts';
import { INDEX_BUCKETS } from './keys.ts';
import { scripts } from './lua.ts';
import { removeUnlessOwned } from './indexes.ts';

/** A stale-looking entry: what its session's header said, and when first seen so. */
interface Suspect {
  header: string;
  since: number;
}

interface AuditState {
  /** SSCAN cursor per owner-index key. */
  cursors: Map<string, string>;
  /** Stale-looking entries per owner-index key. */
  suspects: Map<string, Map<string, Suspect>>;
}

const states = new WeakMap<StoreCore, AuditState>();

function stateOf(core: StoreCore): AuditState {
  let state = states.get(core);
  if (!state) states.set(core, (state = { cursors: new Map(), suspects: new Map() }));
  return state;
}

/** The header's owner and epoch ('' when the session is gone or unreadable): what a landing move changes. */
function fingerprint(parts: string[] | null | undefined): { owner: string | undefined; header: string } {
  if (!parts) return { owner: undefined, header: '' };
  return { owner: parts[H.own], header: `${parts[H.own]}|${parts[H.ep]}` };
}

/**
 * Audits one page of each owner's index in `bucket` (⌈sweepAuditSize / INDEX_BUCKETS⌉ entries, so that a
 * sweep reads about sweepAuditSize headers per owner) and re-checks the entries suspected before.
 * Returns the number of entries removed.
 */
export async function auditOwnerIndexes(core: StoreCore, pool: string, bucket: number, owners: readonly string[]): Promise<number> {
  const { keys, redis, settings, logger } = core;
  const page = Math.ceil(settings.sweepAuditSize / INDEX_BUCKETS);
  if (page === 0) return 0;
  const { cursors, suspects } = stateOf(core);
  let removed = 0;
  for (const owner of owners) {
    const indexKey = keys.ownerIndex(pool, owner, bucket);
    const [next, members] = await core.exec('sweep', () => redis.sscan(indexKey, cursors.get(indexKey) ?? '0', 'COUNT', page));
    cursors.set(indexKey, next);
    const known = suspects.get(indexKey) ?? new Map<string, Suspect>();
    const ids = [...new Set([...known.keys(), ...members])];
    if (ids.length === 0) {
      suspects.delete(indexKey);
      // Forget an owner whose index is empty: atomically, so that a claim adding to it meanwhile keeps it named.
      if (next === '0') await core.script('sweep', scripts.forgetOwner, [indexKey, keys.owners(pool, bucket)], [owner]);
      continue;
    }
    const now = Date.now();
    const headers = await core.exec('sweep', () => Promise.all(ids.map((id) => core.headerParts(pool, id))));
    const remove: string[] = [];
    const stillSuspect = new Map<string, Suspect>();
    ids.forEach((id, i) => {
      const seen = fingerprint(headers[i]);
      if (seen.owner === owner) return;
      const before = known.get(id);
      if (before && before.header === seen.header && now - before.since >= settings.sweepAuditGraceMs) remove.push(id);
      else stillSuspect.set(id, before && before.header === seen.header ? before : { header: seen.header, since: now });
    });
    if (stillSuspect.size > 0) suspects.set(indexKey, stillSuspect);
    else suspects.delete(indexKey);
    if (remove.length === 0) continue;
    const gone = await core.exec('sweep', () =>
      removeUnlessOwned(
        core,
        pool,
        remove.map((id) => ({ owner, id })),
      ),
    );
    removed += gone;
    logger.debug({ pool, owner, sessions: gone }, 'sweep: stale owner-index entries removed');
  }
  return removed;
}
