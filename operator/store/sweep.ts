// The sweep: Redis expires session values itself; the sweep makes the indexes and owners
// learn of it. Its cost follows the entries due (pool-index scores and lease expiries up to
// now), not the number of sessions stored, plus a bounded audit of each owner index.
import type { StoreCore } from './core.ts';
import { H } from './codec.ts';
import { SessionCorruptedError } from './errors.ts';
import { assertPoolId } from './keys.ts';
import { scripts } from './lua.ts';
import type { SweepResult } from './types.ts';

/** Owner-index audit position per pool and owner (SSCAN cursor), kept between sweeps. */
const auditCursors = new WeakMap<StoreCore, Map<string, string>>();

export async function sweepPool(core: StoreCore, pool: string): Promise<SweepResult> {
  assertPoolId(pool);
  const started = Date.now();
  const { keys, redis, settings, logger, metrics } = core;
  const batch = settings.sweepBatchSize;
  const owners = await core.exec('sweep', () => redis.smembers(keys.owners(pool)));
  let expired = 0;
  let rescored = 0;
  let leasesReleased = 0;
  let ownerEntriesRemoved = 0;

  // 1. Pool-index entries due: gone sessions leave every index; live ones get their real expiry.
  for (;;) {
    const now = Date.now();
    const due = await core.exec('sweep', () => redis.zrangebyscore(keys.poolIndex(pool), '-inf', now, 'LIMIT', 0, batch));
    if (due.length === 0) break;
    const ttls = await core.exec('sweep', () => Promise.all(due.map((id) => redis.pttl(keys.session(pool, id)))));
    const gone = due.filter((_, i) => ttls[i] === -2);
    const live = due.flatMap((id, i) => {
      const ttl = ttls[i] ?? -2;
      return ttl === -2 ? [] : [now + (ttl > 0 ? ttl : settings.defaultTtlSeconds * 1000), id];
    });
    await core.exec('sweep', () =>
      Promise.all([
        ...(gone.length > 0 ? [redis.zrem(keys.poolIndex(pool), ...gone), redis.zrem(keys.leaseIndex(pool), ...gone)] : []),
        ...(gone.length > 0 ? owners.map((owner) => redis.srem(keys.ownerIndex(pool, owner), ...gone)) : []),
        ...(live.length > 0 ? [redis.zadd(keys.poolIndex(pool), 'XX', ...live)] : []),
      ]),
    );
    for (const id of gone) logger.debug({ pool, sessionId: id }, 'sweep: session expired or deleted, index entries removed');
    expired += gone.length;
    rescored += live.length / 2;
    if (due.length < batch || Date.now() - started > 10_000) break;
  }
  if (expired > 0) metrics.expiries.inc({ pool }, expired);

  // 2. Leases due: release the lapsed ones (a CAS in the session's slot), then fix the owner index.
  for (;;) {
    const due = await core.exec('sweep', () => redis.zrangebyscore(keys.leaseIndex(pool), '-inf', Date.now(), 'LIMIT', 0, batch));
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
        leasesReleased++;
        drop.push(id);
        steps.push(redis.srem(keys.ownerIndex(pool, owner), id));
        logger.debug({ pool, sessionId: id, owner, epoch: Number(r[2]) }, 'sweep: lapsed lease released');
      } else if (r[0] === 0 && Number(r[1]) > 0) {
        rescore.push(Number(r[1]), id);
      } else {
        drop.push(id);
      }
    });
    if (drop.length > 0) steps.push(redis.zrem(keys.leaseIndex(pool), ...drop));
    if (rescore.length > 0) steps.push(redis.zadd(keys.leaseIndex(pool), ...rescore));
    await core.exec('sweep', () => Promise.all(steps));
    if (due.length < batch || Date.now() - started > 10_000) break;
  }
  if (leasesReleased > 0) metrics.leasesReleased.inc({ pool }, leasesReleased);

  // 3. Audit a bounded page of each owner index: drop entries whose session is gone or owned by another.
  if (settings.sweepAuditSize > 0) {
    let cursors = auditCursors.get(core);
    if (!cursors) auditCursors.set(core, (cursors = new Map<string, string>()));
    for (const owner of owners) {
      const indexKey = keys.ownerIndex(pool, owner);
      const cursorKey = `${pool}\u0000${owner}`;
      const [next, members] = await core.exec('sweep', () =>
        redis.sscan(indexKey, cursors.get(cursorKey) ?? '0', 'COUNT', settings.sweepAuditSize),
      );
      cursors.set(cursorKey, next);
      if (members.length === 0) {
        if (next === '0') {
          // Empty owner index: forget the owner (a concurrent claim re-adds it before its session step).
          const size = await core.exec('sweep', () => redis.scard(indexKey));
          if (size === 0) await core.exec('sweep', () => redis.srem(keys.owners(pool), owner));
        }
        continue;
      }
      const ownerOf = (id: string) => core.headerParts(pool, id).then((h) => h?.[H.own]);
      const actual = await core.exec('sweep', () => Promise.all(members.map(ownerOf)));
      const stale = members.filter((_, i) => actual[i] !== owner);
      if (stale.length === 0) continue;
      // Re-check each in its slot just before removing (an in-flight claim adds before its CAS).
      const again = await core.exec('sweep', () => Promise.all(stale.map(ownerOf)));
      const remove = stale.filter((_, i) => again[i] !== owner);
      if (remove.length > 0) {
        await core.exec('sweep', () => redis.srem(indexKey, ...remove));
        ownerEntriesRemoved += remove.length;
        logger.debug({ pool, owner, sessions: remove.length }, 'sweep: stale owner-index entries removed');
      }
    }
  }

  const count = await core.exec('sweep', () => redis.zcard(keys.poolIndex(pool)));
  metrics.sessions.set({ pool }, count);
  const result: SweepResult = { expired, leasesReleased, durationMs: Date.now() - started, ownerEntriesRemoved, rescored };
  if (expired + leasesReleased + ownerEntriesRemoved > 0) logger.debug({ pool, ...result }, 'sweep done');
  return result;
}
