// The periodic count check of a pool (run by the Sweeper, next to the store sweep): session
// counts live in Redis, which cannot be watched, so they are read every interval; the pool is
// reconciled only when what was read would change its status or its scaling (a reconcile that
// would change nothing is never queued). Pure: the caller reads the store and enqueues.
import type { V1Pod } from '@kubernetes/client-node';
import type { SessionPool } from '../../api/index.ts';
import { deadWorkers, type StoreCounts } from './sessions.ts';
import { canonicalJson, isPodLive, isPodTerminating, podNames, sessionsPerWorker } from './status.ts';

/**
 * Why the counts just read call for a reconcile of the pool, or undefined when they match what
 * its status shows. Status holds what scaling reads (activeSessions; the per-worker counts that
 * pick scale-down victims), so "status unchanged" also means "scaling decision unchanged"; the
 * end of a stabilization window is a timer of its own (the reconciler's requeue).
 */
export function countsChange(pool: SessionPool, pods: readonly V1Pod[], counts: StoreCounts | undefined): string | undefined {
  const status = pool.status ?? {};
  const reachable = (status.conditions ?? []).find((c) => c.type === 'StoreReachable')?.status;
  if (counts === undefined) return reachable === 'False' ? undefined : 'store unreachable';
  if (reachable !== 'True') return 'store reachable';
  if (status.activeSessions !== counts.active) return `activeSessions ${status.activeSessions ?? '-'} -> ${counts.active}`;
  if (counts.anonymous !== undefined && status.anonymousSessions !== counts.anonymous)
    return `anonymousSessions ${status.anonymousSessions ?? '-'} -> ${counts.anonymous}`;
  const live = pods.filter(isPodLive);
  if (canonicalJson(sessionsPerWorker(live, counts.byOwner)) !== canonicalJson(status.sessionsPerWorker))
    return 'sessions per worker changed';
  const dead = deadWorkers(counts, podNames(pods, isPodLive), podNames(pods, isPodTerminating));
  if (dead.length > 0) return `dead workers ${dead.join(', ')}`;
  return undefined;
}
