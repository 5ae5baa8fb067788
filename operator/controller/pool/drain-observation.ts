// DrainBlocked, derived from a pool's drain migrations (the drain controller only creates
// them): True while one ended without success and was not forced, saying which node, what is
// left there and how to force; False once such a condition has nothing left to report. Pure:
// the reconciler passes the migrations of the pool's namespace from its cache.
import type { V1Pod } from '@kubernetes/client-node';
import type { SessionMigration, SessionPool } from '../../api/index.ts';
import { blockedMessage, DRAIN_NODE_LABEL, NODE_DRAIN_PURPOSE } from '../drain/detect.ts';
import { isTerminal } from '../migration/phases.ts';
import { PURPOSE_LABEL } from './names.ts';
import { REASONS, type DrainObservation } from './status.ts';

/** Ownership of a drain migration's forced end (migration/runner.ts CONDITION_FORCED). */
const FORCED_CONDITION = 'ForcedRelease';

/** The DrainBlocked observation of `pool`, from the migrations of its namespace and its live pods. */
export function observeDrains(pool: SessionPool, migrations: readonly SessionMigration[], livePods: readonly V1Pod[]): DrainObservation {
  const drains = migrations
    .filter(
      (m) =>
        m.spec.poolRef.name === pool.metadata.name &&
        m.metadata.labels?.[PURPOSE_LABEL] === NODE_DRAIN_PURPOSE &&
        !m.metadata.deletionTimestamp &&
        (m.metadata.ownerReferences ?? []).every((r) => !r.controller || r.uid === pool.metadata.uid),
    )
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const nodeOf = (m: SessionMigration) =>
    m.metadata.annotations?.['dspex.io/node'] ?? m.spec.evacuate?.nodeName ?? m.metadata.labels?.[DRAIN_NODE_LABEL] ?? '';
  const forced = (m: SessionMigration) => (m.status?.conditions ?? []).some((c) => c.type === FORCED_CONDITION && c.status === 'True');
  const blocked = drains.filter((m) => isTerminal(m.status?.phase) && m.status?.phase !== 'Succeeded' && !forced(m));
  const first = blocked[0];
  if (first) {
    const node = nodeOf(first);
    const left = livePods.filter((p) => p.spec?.nodeName === node).map((p) => p.metadata?.name ?? '');
    const more = blocked.length > 1 ? ` Also blocked: ${blocked.slice(1).map(nodeOf).join(', ')}.` : '';
    return { blocked: { reason: first.status?.reason ?? REASONS.EvacuationFailed, message: blockedMessage(node, first, left) + more } };
  }
  const forcedOne = drains.find(forced);
  if (forcedOne) return { cleared: { reason: 'DrainForced', message: `drain of node ${nodeOf(forcedOne)} was forced` } };
  const done = drains.find((m) => m.status?.phase === 'Succeeded');
  if (done) return { cleared: { reason: 'Evacuated', message: `pods of node ${nodeOf(done)} evacuated` } };
  return { cleared: { reason: 'NoDrainBlocked', message: 'no drain of the pool is blocked' } };
}
