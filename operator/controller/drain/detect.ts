// Maintenance drain, the pure parts: is a Node being drained, which SessionMigration evacuates
// a pool's pods from it (one per pool and node, under a deterministic name, so it is created
// once whatever the number of reconciles), and what a blocked drain reports.
import { createHash } from 'node:crypto';
import type { V1Node, V1OwnerReference } from '@kubernetes/client-node';
import {
  API_VERSION,
  POOL_LABEL,
  SESSION_MIGRATION_KIND,
  SESSION_POOL_KIND,
  type SessionMigration,
  type SessionPool,
} from '../../api/index.ts';

/** The taint `kubectl cordon` adds (the node lifecycle controller mirrors spec.unschedulable). */
export const UNSCHEDULABLE_TAINT = 'node.kubernetes.io/unschedulable';
/**
 * Taints that announce a drain: the cluster autoscaler's and Karpenter's scale-down, a cloud
 * provider's shutdown, and our own (for tools that drain without cordoning first).
 */
export const DRAIN_TAINTS: readonly string[] = [
  UNSCHEDULABLE_TAINT,
  'ToBeDeletedByClusterAutoscaler',
  'karpenter.sh/disrupted',
  'karpenter.sh/disruption',
  'node.cloudprovider.kubernetes.io/shutdown',
  'dspex.io/drain',
];

/** Labels on the SessionMigrations the drain controller creates. */
export const DRAIN_NODE_LABEL = 'dspex.io/drain-node';
export const PURPOSE_LABEL = 'dspex.io/purpose';
export const NODE_DRAIN_PURPOSE = 'node-drain';
/** Pool condition set when a drain cannot finish by its deadline. */
export const CONDITION_DRAIN_BLOCKED = 'DrainBlocked';

export interface DrainState {
  draining: boolean;
  /** Why: 'cordoned', or 'taint <key>'. */
  reason: string;
}

export function nodeDrainState(node: V1Node, extraTaints: readonly string[] = []): DrainState {
  if (node.spec?.unschedulable === true) return { draining: true, reason: 'cordoned' };
  const keys = new Set([...DRAIN_TAINTS, ...extraTaints]);
  for (const taint of node.spec?.taints ?? []) {
    if (!keys.has(taint.key)) continue;
    // PreferNoSchedule is a hint (e.g. a deletion candidate), not a drain.
    if (taint.effect === 'PreferNoSchedule') continue;
    return { draining: true, reason: `taint ${taint.key}` };
  }
  return { draining: false, reason: '' };
}

/** `<pool>-drain-<node>`, or a hashed form when that is no valid object name. */
export function drainMigrationName(pool: string, node: string): string {
  const plain = `${pool}-drain-${node}`.toLowerCase();
  if (plain.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(plain)) return plain;
  const hash = createHash('sha256').update(`${pool}\u0000${node}`).digest('hex').slice(0, 10);
  const safeNode = node
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 200 - Math.min(pool.length, 40));
  return `${pool.slice(0, 40)}-drain-${safeNode}-${hash}`.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
}

function poolOwnerReference(pool: SessionPool): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: SESSION_POOL_KIND,
    name: pool.metadata.name ?? '',
    uid: pool.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The Evacuate migration of a pool's pods on a draining node, owned by the pool. */
export function drainMigration(pool: SessionPool, node: string, options: { force?: boolean } = {}): SessionMigration {
  const name = pool.metadata.name ?? '';
  const maintenance = pool.spec.maintenance;
  return {
    apiVersion: API_VERSION,
    kind: SESSION_MIGRATION_KIND,
    metadata: {
      name: drainMigrationName(name, node),
      namespace: pool.metadata.namespace ?? 'default',
      labels: { [POOL_LABEL]: name, [DRAIN_NODE_LABEL]: node.slice(0, 63), [PURPOSE_LABEL]: NODE_DRAIN_PURPOSE },
      annotations: { 'dspex.io/node': node, ...(options.force ? { 'dspex.io/force-drain': 'true' } : {}) },
      ...(pool.metadata.uid ? { ownerReferences: [poolOwnerReference(pool)] } : {}),
    },
    spec: {
      poolRef: { name },
      type: 'Evacuate',
      // Emptied pods are evicted (budgets hold) or, without evictAfterEvacuation, left to kubectl drain.
      evacuate: { nodeName: node, evictPods: maintenance.evictAfterEvacuation, keepSourcePods: !maintenance.evictAfterEvacuation },
      dryRun: false,
      batchSize: 500,
      deadlineSeconds: maintenance.drainDeadlineSeconds,
      onFailure: 'Rollback',
    },
  };
}

export type DrainDecision =
  | { action: 'none'; why: string }
  | { action: 'create' }
  | { action: 'delete'; why: string }
  | { action: 'report-blocked' }
  | { action: 'report-done' };

export interface DrainInput {
  state: DrainState;
  evacuateOnCordon: boolean;
  /** Pool pods on the node. */
  podsOnNode: number;
  /** The pool's migration for this node, if any. */
  existing?: { phase?: string; terminal: boolean };
}

/**
 * What the drain controller does for one (pool, node): create the evacuation once when the node
 * drains and the pool has pods there; report a finished or blocked one; delete a finished one
 * once the node is schedulable again (so a later cordon evacuates afresh).
 */
export function decide(input: DrainInput): DrainDecision {
  if (!input.state.draining) {
    if (input.existing?.terminal) return { action: 'delete', why: 'node schedulable again' };
    return { action: 'none', why: 'node not draining' };
  }
  if (!input.existing) {
    if (!input.evacuateOnCordon) return { action: 'none', why: 'maintenance.evacuateOnCordon is false' };
    if (input.podsOnNode === 0) return { action: 'none', why: 'no pool pod on the node' };
    return { action: 'create' };
  }
  if (!input.existing.terminal) return { action: 'none', why: `evacuation ${input.existing.phase ?? 'Pending'}` };
  return input.existing.phase === 'Succeeded' ? { action: 'report-done' } : { action: 'report-blocked' };
}

/** The message of a blocked drain: why, and what is left. */
export function blockedMessage(node: string, migration: SessionMigration, podsLeft: readonly string[]): string {
  const status = migration.status ?? {};
  const remaining = status.progress?.remaining ?? 0;
  return (
    `drain of node ${node} did not finish: evacuation ${migration.metadata.name} ended ${status.phase} (${status.reason ?? 'unknown'}: ${status.message ?? ''}); ` +
    `left on the node: ${podsLeft.length ? podsLeft.join(', ') : 'no pool pod'}${remaining ? `, ${remaining} sessions not moved` : ''}. ` +
    `To force: kubectl annotate node ${node} dspex.io/force-drain=true (sessions left are released to the store unowned, then the pods are evicted)`
  );
}
