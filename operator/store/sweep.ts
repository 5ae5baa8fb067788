// The sweep: Redis expires session values itself; the sweep makes the indexes and owners
// learn of it. Its cost follows the entries due (pool-index scores and lease expiries up to
// now), not the number of sessions stored, plus a bounded audit of each owner index: about
// sweepAuditSize entries per owner and sweep, shared by the owner's bucket keys.
import type { StoreCore } from './core.ts';
import { SessionCorruptedError } from './errors.ts';
import { assertPoolId } from './keys.ts';
import { scripts, type LuaReply } from './lua.ts';
import { BUCKETS, removeUnlessOwned } from './indexes.ts';
import { migrateLegacyIndexes } from './index-layout.ts';
import { auditOwnerIndexes } from './owner-audit.ts';
import type { SweepResult } from './types.ts';

export async function sweepPool(core: StoreCore, pool: string): Promise<SweepResult> {
  assertPoolId(pool);
  const started = Date.now();
  const { logger, metrics } = core;
  // Entries an older process wrote in the single-slot layout move into the buckets first.
  await migrateLegacyIndexes(core, pool);
  const totals = { expired: 0, rescored: 0, leasesReleased: 0, ownerEntriesRemoved: 0 };
  // The buckets are independent (each its own slot): swept together. Each returns its pool-index size.
  const sizes = await Promise.all(BUCKETS.map((bucket) => sweepBucket(core, pool, bucket, started, totals)));
  const { expired, rescored, leasesReleased, ownerEntriesRemoved } = totals;
  if (expired > 0) metrics.expiries.inc({ pool }, expired);
  if (leasesReleased > 0) metrics.leasesReleased.inc({ pool }, leasesReleased);
  const count = sizes.reduce((sum, n) => sum + n, 0);
  metrics.sessions.set({ pool }, count);
  const result: SweepResult = { expired, leasesReleased, durationMs: Date.now() - started, ownerEntriesRemoved, rescored };
  if (expired + leasesReleased + ownerEntriesRemoved > 0) logger.debug({ pool, ...result }, 'sweep done');
  return result;
}

interface SweepTotals {
  expired: number;
  rescored: number;
  leasesReleased: number;
  ownerEntriesRemoved: number;
}

/** Sweeps one bucket; returns the size of its pool index once swept. */
async function sweepBucket(core: StoreCore, pool: string, bucket: number, started: number, totals: SweepTotals): Promise<number> {
  const { keys, redis, settings, logger } = core;
  const batch = settings.sweepBatchSize;
  const poolIndex = keys.poolIndex(pool, bucket);
  const leaseIndex = keys.leaseIndex(pool, bucket);
  // One call tells what is due in the bucket (a quiet one needs nothing more but the audit).
  const peekedAt = Date.now();
  const peek = await core.script('sweep', scripts.sweepPeek, [poolIndex, leaseIndex, keys.owners(pool, bucket)], [peekedAt, batch]);
  const [indexSize, poolDue, leasesDue, ownerList] = Array.isArray(peek) ? peek : [];
  const owners = strings(ownerList);
  let removedFromPool = 0;

  // 1. Pool-index entries due: gone sessions leave every index; live ones get their real expiry.
  for (let first = true; ; first = false) {
    const now = first ? peekedAt : Date.now();
    const due = first ? strings(poolDue) : await core.exec('sweep', () => redis.zrangebyscore(poolIndex, '-inf', now, 'LIMIT', 0, batch));
    if (due.length === 0) break;
    const ttls = await core.exec('sweep', () => Promise.all(due.map((id) => redis.pttl(keys.session(pool, id)))));
    const gone = due.filter((_, i) => ttls[i] === -2);
    const live = due.flatMap((id, i) => {
      const ttl = ttls[i] ?? -2;
      return ttl === -2 ? [] : [now + (ttl > 0 ? ttl : settings.defaultTtlSeconds * 1000), id];
    });
    await core.exec('sweep', () =>
      Promise.all([
        ...(gone.length > 0 ? [redis.zrem(poolIndex, ...gone), redis.zrem(leaseIndex, ...gone)] : []),
        ...(gone.length > 0 ? owners.map((owner) => redis.srem(keys.ownerIndex(pool, owner, bucket), ...gone)) : []),
        ...(live.length > 0 ? [redis.zadd(poolIndex, 'XX', ...live)] : []),
      ]),
    );
    for (const id of gone) logger.debug({ pool, sessionId: id }, 'sweep: session expired or deleted, index entries removed');
    totals.expired += gone.length;
    removedFromPool += gone.length;
    totals.rescored += live.length / 2;
    if (due.length < batch || Date.now() - started > 10_000) break;
  }

  // 2. Leases due: release the lapsed ones (a CAS in the session's slot), then fix the owner index.
  for (let first = true; ; first = false) {
    const due = first
      ? strings(leasesDue)
      : await core.exec('sweep', () => redis.zrangebyscore(leaseIndex, '-inf', Date.now(), 'LIMIT', 0, batch));
    if (due.length === 0) break;
    // A corrupted session is quarantined by core.script (then absent: its entry is dropped).
    const replies = await Promise.all(
      due.map((id) =>
        core.script('sweep', scripts.releaseIfLapsed, [keys.session(pool, id)], []).catch((error: unknown) => {
          if (error instanceof SessionCorruptedError) return [-1];
          throw error;
        }),
      ),
    );
    const steps: Promise<unknown>[] = [];
    const drop: string[] = [];
    const rescore: (string | number)[] = [];
    replies.forEach((reply, i) => {
      const id = due[i]!;
      const r = Array.isArray(reply) ? reply : [];
      if (r[0] === 1) {
        const owner = String(r[1]);
        totals.leasesReleased++;
        drop.push(id);
        // Checked: the released owner may claim it again before the removal.
        steps.push(removeUnlessOwned(core, pool, [{ owner, id }]));
        logger.debug({ pool, sessionId: id, owner, epoch: Number(r[2]) }, 'sweep: lapsed lease released');
      } else if (r[0] === 0 && Number(r[1]) > 0) {
        rescore.push(Number(r[1]), id);
      } else {
        drop.push(id);
      }
    });
    if (drop.length > 0) steps.push(redis.zrem(leaseIndex, ...drop));
    if (rescore.length > 0) steps.push(redis.zadd(leaseIndex, ...rescore));
    await core.exec('sweep', () => Promise.all(steps));
    if (due.length < batch || Date.now() - started > 10_000) break;
  }

  // 3. Audit a bounded page of each owner index (owner-audit.ts).
  // (Awaited first: `totals.x += await ...` would read totals.x before the buckets running alongside add theirs.)
  const auditRemoved = await auditOwnerIndexes(core, pool, bucket, owners);
  totals.ownerEntriesRemoved += auditRemoved;
  return Math.max(0, Number(indexSize ?? 0) - removedFromPool);
}

/** The members of a Lua array reply. */
function strings(reply: LuaReply | undefined): string[] {
  return Array.isArray(reply) ? reply.map(String) : [];
}
