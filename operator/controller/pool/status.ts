// Pure status computation: from the Deployment, the pods, the store's counts and the scaling
// decision to SessionPoolStatus with the conditions Ready, Progressing, Degraded and
// StoreReachable, and DrainBlocked (from the pool's drain migrations; the pool reconciler is
// the only writer of pool status). Reasons are a contract with docs/operator.md (the troubleshooting table).
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { CurrentEvacuation, SessionPool, SessionPoolPhase, SessionPoolStatus, SessionsPerWorker } from '../../api/index.ts';
import { rfc3339, setCondition, type Condition, type ConditionInput } from '../../kube/conditions.ts';
import { CONDITION_DRAIN_BLOCKED } from '../drain/detect.ts';
import { selectorString } from './names.ts';

export const MAX_WORKERS_IN_STATUS = 50;

export const REASONS = {
  // StoreReachable
  StoreReachable: 'StoreReachable',
  StoreUnreachable: 'StoreUnreachable',
  CredentialsUnavailable: 'CredentialsUnavailable',
  /** A Warning Event (no condition): spec.store.tls.insecureSkipVerify is set. */
  InsecureTLS: 'InsecureTLS',
  // Ready
  WorkersReady: 'WorkersReady',
  WorkersNotReady: 'WorkersNotReady',
  ScaledToZero: 'ScaledToZero',
  DeploymentMissing: 'DeploymentMissing',
  // Progressing
  Stable: 'Stable',
  RollingOut: 'RollingOut',
  ScalingUp: 'ScalingUp',
  ScalingDown: 'ScalingDown',
  Evacuating: 'Evacuating',
  // Degraded
  AsExpected: 'AsExpected',
  EvacuationFailed: 'EvacuationFailed',
  EvacuationTimedOut: 'EvacuationTimedOut',
  EvacuationUnavailable: 'EvacuationUnavailable',
  RolloutStuck: 'RolloutStuck',
  ReplicaFailure: 'ReplicaFailure',
  ApplyFailed: 'ApplyFailed',
} as const;

export const INSECURE_TLS_NOTE =
  'spec.store.tls.insecureSkipVerify: the Redis server certificates are not verified by the operator nor the workers; anyone on the network path can impersonate Redis and read sessions and the password';

export interface StoreObservation {
  reachable: boolean;
  /** Why the store could not be read (unreachable, credentials). */
  reason?: typeof REASONS.StoreUnreachable | typeof REASONS.CredentialsUnavailable;
  error?: string;
  activeSessions?: number;
  anonymousSessions?: number;
  /** Sessions per owner (unowned under ''). */
  byOwner?: ReadonlyMap<string, number>;
}

export interface ScaleObservation {
  desiredReplicas: number;
  /** An evacuation in progress. */
  evacuation?: CurrentEvacuation;
  /** Scale-down blocked: why (a Degraded reason) and what happened. */
  blocked?: {
    reason: typeof REASONS.EvacuationFailed | typeof REASONS.EvacuationTimedOut | typeof REASONS.EvacuationUnavailable;
    message: string;
  };
  /** Set when this reconcile changed the Deployment's replicas. */
  scaledAt?: Date;
}

/** The pool's node drains, as the reconciler derives them from its drain SessionMigrations. */
export interface DrainObservation {
  /** A drain ended without success: DrainBlocked=True with this reason and message. */
  blocked?: { reason: string; message: string };
  /** Nothing blocked: DrainBlocked=False with this, if the condition is there at all. */
  cleared?: { reason: string; message: string };
}

export interface StatusInput {
  pool: SessionPool;
  deployment: V1Deployment | undefined;
  pods: readonly V1Pod[];
  store: StoreObservation;
  scale: ScaleObservation;
  /** A child could not be applied (message), e.g. the apiserver refused the pod template. */
  applyError?: string;
  drain?: DrainObservation;
  now: Date;
}

export function isPodReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function isPodLive(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && !podEnded(pod);
}

/** Deleted, but its containers may still run (they drain within the grace period). */
export function isPodTerminating(pod: V1Pod): boolean {
  return !!pod.metadata?.deletionTimestamp && !podEnded(pod);
}

function podEnded(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** The names of the pods that pass `test`. */
export function podNames(pods: readonly V1Pod[], test: (pod: V1Pod) => boolean): Set<string> {
  return new Set(pods.filter(test).map((p) => p.metadata?.name ?? ''));
}

export function sessionsPerWorker(pods: readonly V1Pod[], byOwner: ReadonlyMap<string, number>): SessionsPerWorker | undefined {
  const workers = pods
    .filter(isPodLive)
    .map((pod) => ({ worker: pod.metadata?.name ?? '', sessions: byOwner.get(pod.metadata?.name ?? '') ?? 0 }));
  if (workers.length === 0) return undefined;
  workers.sort((a, b) => b.sessions - a.sessions || a.worker.localeCompare(b.worker));
  const counts = workers.map((w) => w.sessions);
  const summary: SessionsPerWorker = {
    min: Math.min(...counts),
    max: Math.max(...counts),
    mean: Math.round((counts.reduce((a, b) => a + b, 0) / counts.length) * 100) / 100,
    workers: workers.slice(0, MAX_WORKERS_IN_STATUS),
  };
  summary.truncated = workers.length > MAX_WORKERS_IN_STATUS;
  return summary;
}

function deploymentCondition(deployment: V1Deployment | undefined, type: string) {
  return deployment?.status?.conditions?.find((c) => c.type === type);
}

export function computeStatus(input: StatusInput): SessionPoolStatus {
  const { pool, deployment, pods, store, scale, now } = input;
  const generation = pool.metadata.generation;
  const previous = pool.status ?? {};
  const desired = scale.desiredReplicas;
  const livePods = pods.filter(isPodLive);
  const replicas = deployment?.status?.replicas ?? 0;
  const readyReplicas = deployment?.status?.readyReplicas ?? livePods.filter(isPodReady).length;
  const updatedReplicas = deployment?.status?.updatedReplicas ?? 0;
  const deploymentSpecReplicas = deployment?.spec?.replicas ?? 0;
  const rolloutObserved =
    deployment !== undefined && (deployment.status?.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);

  let conditions = (previous.conditions ?? []) as Condition[];
  const set = (c: ConditionInput) => {
    conditions = setCondition(conditions, c, generation, now);
  };

  // StoreReachable
  if (store.reachable)
    set({ type: 'StoreReachable', status: 'True', reason: REASONS.StoreReachable, message: 'the session store answered' });
  else
    set({
      type: 'StoreReachable',
      status: 'False',
      reason: store.reason ?? REASONS.StoreUnreachable,
      message: store.error ?? 'the session store did not answer',
    });

  // Progressing
  const rollingOut =
    deployment !== undefined && (!rolloutObserved || updatedReplicas < deploymentSpecReplicas || replicas > deploymentSpecReplicas);
  if (scale.evacuation) {
    set({
      type: 'Progressing',
      status: 'True',
      reason: REASONS.Evacuating,
      message: `evacuating ${scale.evacuation.pods?.join(', ') ?? ''} through ${scale.evacuation.migration} before scaling to ${desired}`,
    });
  } else if (deployment && deploymentSpecReplicas < replicas && !rollingOut) {
    set({ type: 'Progressing', status: 'True', reason: REASONS.ScalingDown, message: `scaling down to ${deploymentSpecReplicas} workers` });
  } else if (
    deployment &&
    readyReplicas < deploymentSpecReplicas &&
    replicas <= deploymentSpecReplicas &&
    updatedReplicas >= deploymentSpecReplicas
  ) {
    set({
      type: 'Progressing',
      status: 'True',
      reason: REASONS.ScalingUp,
      message: `${readyReplicas} of ${deploymentSpecReplicas} workers ready`,
    });
  } else if (rollingOut) {
    set({
      type: 'Progressing',
      status: 'True',
      reason: REASONS.RollingOut,
      message: `${updatedReplicas} of ${deploymentSpecReplicas} workers updated`,
    });
  } else if (!deployment) {
    set({ type: 'Progressing', status: 'True', reason: REASONS.ScalingUp, message: 'creating the worker Deployment' });
  } else {
    set({ type: 'Progressing', status: 'False', reason: REASONS.Stable, message: `${readyReplicas} workers ready, nothing to change` });
  }

  // Degraded: the first problem that needs attention wins.
  const replicaFailure = deploymentCondition(deployment, 'ReplicaFailure');
  const progress = deploymentCondition(deployment, 'Progressing');
  if (!store.reachable) {
    set({
      type: 'Degraded',
      status: 'True',
      reason: store.reason ?? REASONS.StoreUnreachable,
      message: store.error ?? 'the session store did not answer',
    });
  } else if (input.applyError) {
    set({ type: 'Degraded', status: 'True', reason: REASONS.ApplyFailed, message: input.applyError });
  } else if (scale.blocked) {
    set({ type: 'Degraded', status: 'True', reason: scale.blocked.reason, message: scale.blocked.message });
  } else if (replicaFailure?.status === 'True') {
    set({
      type: 'Degraded',
      status: 'True',
      reason: REASONS.ReplicaFailure,
      message: replicaFailure.message ?? 'the Deployment cannot create pods',
    });
  } else if (progress?.status === 'False' && progress.reason === 'ProgressDeadlineExceeded') {
    set({
      type: 'Degraded',
      status: 'True',
      reason: REASONS.RolloutStuck,
      message: progress.message ?? 'the worker rollout exceeded its progress deadline',
    });
  } else {
    set({ type: 'Degraded', status: 'False', reason: REASONS.AsExpected, message: '' });
  }

  // Ready
  if (!deployment)
    set({ type: 'Ready', status: 'False', reason: REASONS.DeploymentMissing, message: 'the worker Deployment does not exist yet' });
  else if (!store.reachable)
    set({
      type: 'Ready',
      status: 'False',
      reason: store.reason ?? REASONS.StoreUnreachable,
      message: 'workers cannot serve sessions without the store',
    });
  else if (desired === 0 && deploymentSpecReplicas === 0)
    set({ type: 'Ready', status: 'True', reason: REASONS.ScaledToZero, message: 'the pool is scaled to zero' });
  else if (readyReplicas >= Math.max(1, Math.min(desired, deploymentSpecReplicas)))
    set({
      type: 'Ready',
      status: 'True',
      reason: REASONS.WorkersReady,
      message: `${readyReplicas} of ${deploymentSpecReplicas} workers ready`,
    });
  else
    set({
      type: 'Ready',
      status: 'False',
      reason: REASONS.WorkersNotReady,
      message: `${readyReplicas} of ${deploymentSpecReplicas} workers ready`,
    });

  // DrainBlocked: only on pools that ever had a blocked drain (absent otherwise).
  if (input.drain?.blocked) set({ type: CONDITION_DRAIN_BLOCKED, status: 'True', ...input.drain.blocked });
  else if (conditions.some((c) => c.type === CONDITION_DRAIN_BLOCKED)) {
    const cleared = input.drain?.cleared ?? { reason: 'NoDrainBlocked', message: 'no drain of the pool is blocked' };
    set({ type: CONDITION_DRAIN_BLOCKED, status: 'False', ...cleared });
  }

  const degraded = conditions.find((c) => c.type === 'Degraded')?.status === 'True';
  let phase: SessionPoolPhase;
  if (pool.metadata.deletionTimestamp) phase = 'Terminating';
  else if (degraded) phase = 'Degraded';
  else if (scale.evacuation) phase = 'Evacuating';
  else if (!deployment || (readyReplicas === 0 && desired > 0)) phase = 'Pending';
  else if (deploymentSpecReplicas !== replicas || readyReplicas < deploymentSpecReplicas || rollingOut) phase = 'Scaling';
  else phase = 'Running';

  const status: SessionPoolStatus = {
    phase,
    replicas,
    readyReplicas,
    desiredReplicas: desired,
    selector: selectorString(pool.metadata.name ?? ''),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  // Counts the store could not give now keep their last known value.
  const active = store.activeSessions ?? previous.activeSessions;
  if (active !== undefined) status.activeSessions = active;
  const anonymous = store.anonymousSessions ?? previous.anonymousSessions;
  if (anonymous !== undefined) status.anonymousSessions = anonymous;
  const perWorker = store.byOwner ? sessionsPerWorker(pods, store.byOwner) : previous.sessionsPerWorker;
  if (perWorker) status.sessionsPerWorker = perWorker;
  const lastScaleTime = scale.scaledAt ? rfc3339(scale.scaledAt) : previous.lastScaleTime;
  if (lastScaleTime) status.lastScaleTime = lastScaleTime;
  if (scale.evacuation) status.currentEvacuation = scale.evacuation;
  status.conditions = conditions;
  return status;
}

/** Canonical JSON with sorted keys, to compare statuses. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/** Canonical JSON (sorted keys, undefined left out), to compare parts of a status. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value ?? null));
}

/**
 * Whether a status write would change anything. lastTransitionTime is left out: it moves only
 * with a condition's status, which is compared, so a difference there alone (a re-rendered
 * timestamp) is noise, never a reason to write.
 */
export function statusEqual(a: SessionPoolStatus | undefined, b: SessionPoolStatus | undefined): boolean {
  const strip = (s: SessionPoolStatus | undefined) => ({
    ...s,
    conditions: (s?.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: undefined })),
  });
  return JSON.stringify(canonical(strip(a))) === JSON.stringify(canonical(strip(b)));
}

/**
 * The merge patch that turns `from` into `to`: every field of `to`, and null for fields that
 * are gone (a merge patch only removes what is set to null). Conditions go as the full array.
 */
export function statusPatch(from: SessionPoolStatus | undefined, to: SessionPoolStatus): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...to };
  for (const key of Object.keys(from ?? {})) if (!(key in to)) patch[key] = null;
  return patch;
}
