// Sources and targets of a migration, from the pods the cache holds and the workers the store
// has registered. Pure: the reconciler reads, these decide.
import type { V1Pod } from '@kubernetes/client-node';
import { POOL_LABEL, type SessionMigrationSpec } from '../../api/index.ts';
import type { WorkerRegistration } from '../../store/types.ts';
import type { TargetWorker } from '../../migration/planner.ts';

export const WORKER_COMPONENT_LABEL = 'app.kubernetes.io/component';
export const WORKER_COMPONENT = 'session-worker';

export class ResolveError extends Error {
  readonly reason: 'NoSources' | 'NoTargets' | 'InvalidSpec';
  constructor(reason: 'NoSources' | 'NoTargets' | 'InvalidSpec', message: string) {
    super(message);
    this.name = 'ResolveError';
    this.reason = reason;
  }
}

/** A worker pod of the pool: its pool label says so (the component label too, when set). */
export function isPoolPod(pod: V1Pod, pool: string): boolean {
  const labels = pod.metadata?.labels ?? {};
  if (labels[POOL_LABEL] !== pool) return false;
  const component = labels[WORKER_COMPONENT_LABEL];
  return component === undefined || component === WORKER_COMPONENT;
}

export function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase !== 'Running') return false;
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Pool pods scheduled on a node (terminating ones included: their sessions must move too). */
export function poolPodsOnNode(pods: readonly V1Pod[], pool: string, nodeName: string): V1Pod[] {
  return pods
    .filter((p) => isPoolPod(p, pool) && p.spec?.nodeName === nodeName)
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/**
 * Source workers of an Evacuate: the named pods (even when the pod is gone, its sessions are
 * still indexed under its name), or every pool pod on the named node. Migrate and Rebalance
 * have no source workers (Migrate's sources are the named sessions' owners).
 */
export function resolveSources(spec: SessionMigrationSpec, pods: readonly V1Pod[]): string[] {
  if (spec.type !== 'Evacuate') return [];
  const evacuate = spec.evacuate;
  if (!evacuate) throw new ResolveError('InvalidSpec', 'spec.evacuate is required for an Evacuate migration');
  if (evacuate.pods && evacuate.nodeName) throw new ResolveError('InvalidSpec', 'spec.evacuate needs pods or nodeName, not both');
  if (evacuate.pods) return [...new Set(evacuate.pods)].sort();
  if (evacuate.nodeName) return poolPodsOnNode(pods, spec.poolRef.name, evacuate.nodeName).map((p) => p.metadata?.name ?? '');
  throw new ResolveError('InvalidSpec', 'spec.evacuate needs pods or nodeName');
}

export interface TargetInput {
  /** The pool identity in the store (`<namespace>/<name>`): registrations of another pool are never targets. */
  pool: string;
  /** The SessionPool's name: its pods carry it in the pool label. */
  poolName: string;
  /** Workers registered in the store (live heartbeats). */
  workers: readonly WorkerRegistration[];
  /** Pods of the migration's namespace (the cache). */
  pods: readonly V1Pod[];
  /** Source workers: never targets. */
  sources: readonly string[];
  /** Rebalance weights by worker name; unlisted = 1; 0 = not a target. */
  weights?: Readonly<Record<string, number>>;
  /** Nodes being drained: their pods are no targets. */
  drainingNodes?: ReadonlySet<string>;
}

/**
 * Targets: workers registered and not draining in the store, whose pod is a ready pool pod not
 * being deleted, not on a draining node, and not a source. Sorted by name.
 */
export function resolveTargets(input: TargetInput): TargetWorker[] {
  const sources = new Set(input.sources);
  const pods = new Map(input.pods.filter((p) => isPoolPod(p, input.poolName)).map((p) => [p.metadata?.name ?? '', p]));
  const targets: TargetWorker[] = [];
  for (const worker of input.workers) {
    if (worker.pool !== input.pool || worker.draining || sources.has(worker.worker)) continue;
    const pod = pods.get(worker.worker);
    if (!pod || !isPodReady(pod)) continue;
    if (pod.spec?.nodeName && input.drainingNodes?.has(pod.spec.nodeName)) continue;
    const weight = input.weights?.[worker.worker] ?? 1;
    if (weight <= 0) continue;
    targets.push({ name: worker.worker, weight });
  }
  return targets.sort((a, b) => a.name.localeCompare(b.name));
}

/** Workers a Rebalance spreads over: the targets plus workers with weight 0 (which are emptied). */
export function rebalanceWorkers(input: TargetInput): { participants: TargetWorker[]; emptied: string[] } {
  const participants = resolveTargets({ ...input, weights: undefined }).map((t) => ({
    name: t.name,
    weight: input.weights?.[t.name] ?? 1,
  }));
  return { participants: participants.filter((p) => p.weight > 0), emptied: participants.filter((p) => p.weight <= 0).map((p) => p.name) };
}
