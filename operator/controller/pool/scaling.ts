// Pure scaling decisions. Desired workers come from spec.replicas, or from the autoscaler:
// ceil(active sessions / target per worker) within [min, max], up at once, down only to the
// highest recommendation of the stabilization window. A decrease never deletes a busy worker
// blindly: the emptiest workers are marked with pod-deletion-cost, evacuated through a
// SessionMigration of type Evacuate, and only then is the Deployment scaled down.
import { createHash } from 'node:crypto';
import type { MigrationPhase, SessionPool, SessionPoolSpec, SessionPoolStatus } from '../../api/index.ts';

export interface Recommendation {
  at: number;
  replicas: number;
}

/** Workers the session count asks for, within [min, max]. */
export function recommendReplicas(autoscaling: SessionPoolSpec['autoscaling'], activeSessions: number): number {
  const raw = Math.ceil(Math.max(0, activeSessions) / Math.max(1, autoscaling.targetSessionsPerWorker));
  return Math.min(autoscaling.maxReplicas, Math.max(autoscaling.minReplicas, raw));
}

export interface StabilizeResult {
  desired: number;
  history: Recommendation[];
}

/**
 * Kubernetes HPA's scale-down stabilization: up at once; down to the highest recommendation
 * seen within the window (the current one included). History older than the window is dropped.
 */
export function stabilize(
  history: readonly Recommendation[],
  recommendation: number,
  current: number,
  now: number,
  windowMs: number,
): StabilizeResult {
  const kept = history.filter((r) => now - r.at < windowMs);
  kept.push({ at: now, replicas: recommendation });
  if (recommendation >= current) return { desired: recommendation, history: kept };
  const highest = Math.max(...kept.map((r) => r.replicas));
  return { desired: Math.min(current, highest), history: kept };
}

/**
 * After a restart the in-memory history is gone: seed it from status so a restart never
 * shortcuts the window (the last decision counts as a recommendation made now).
 */
export function seedHistory(status: SessionPoolStatus | undefined, now: number): Recommendation[] {
  const replicas = status?.desiredReplicas;
  return replicas === undefined ? [] : [{ at: now, replicas }];
}

/** In-memory recommendation history per pool key. */
export class ScaleHistory {
  private readonly byPool = new Map<string, Recommendation[]>();

  get(key: string, status: SessionPoolStatus | undefined, now: number): Recommendation[] {
    return this.byPool.get(key) ?? seedHistory(status, now);
  }

  set(key: string, history: Recommendation[]): void {
    this.byPool.set(key, history);
  }

  delete(key: string): void {
    this.byPool.delete(key);
  }

  size(): number {
    return this.byPool.size;
  }
}

/** Replicas the pool aims for, before evacuation: spec.replicas or the stabilized recommendation. */
export function desiredReplicas(
  pool: SessionPool,
  activeSessions: number | undefined,
  current: number | undefined,
  history: readonly Recommendation[],
  now: number,
): StabilizeResult {
  const { autoscaling } = pool.spec;
  if (!autoscaling.enabled) return { desired: pool.spec.replicas ?? 1, history: [] };
  const start = Math.min(autoscaling.maxReplicas, Math.max(autoscaling.minReplicas, pool.spec.replicas ?? autoscaling.minReplicas));
  const base = current ?? start;
  // Store unreachable: hold where we are (never scale on a count we could not read).
  if (activeSessions === undefined)
    return { desired: Math.min(autoscaling.maxReplicas, Math.max(autoscaling.minReplicas, base)), history: [...history] };
  // A new pool starts at its starting size and, like any scale-down, leaves it only after the window.
  const seeded = current === undefined && history.length === 0 ? [{ at: now, replicas: start }] : history;
  return stabilize(seeded, recommendReplicas(autoscaling, activeSessions), base, now, autoscaling.scaleDownStabilizationSeconds * 1000);
}

export interface WorkerLoad {
  /** Pod name (= the worker's owner name in the store). */
  name: string;
  sessions: number;
  ready: boolean;
}

/** The `count` workers to remove: fewest sessions first, then not-ready ones, then by name (stable). */
export function chooseVictims(workers: readonly WorkerLoad[], count: number): WorkerLoad[] {
  if (count <= 0) return [];
  return [...workers]
    .sort((a, b) => a.sessions - b.sessions || Number(a.ready) - Number(b.ready) || b.name.localeCompare(a.name))
    .slice(0, count);
}

/** A deterministic migration name: the same victims give the same name, so a re-run never creates a second. */
export function evacuationName(pool: string, victims: readonly string[]): string {
  const hash = createHash('sha256')
    .update([...victims].sort().join(','))
    .digest('hex')
    .slice(0, 10);
  return `${pool}-scale-down-${hash}`;
}

export interface EvacuationState {
  name: string;
  phase: MigrationPhase | undefined;
  pods: string[];
  createdAt: number;
  completedAt?: number;
  reason?: string;
  message?: string;
}

export type ScalePlan =
  | { action: 'set'; replicas: number; reason: 'Steady' | 'ScaleUp' | 'ScaleDown'; annotate: string[] }
  | { action: 'evacuate'; replicas: number; target: number; victims: string[]; migration: string }
  | { action: 'wait'; replicas: number; target: number; migration: string; pods: string[] }
  | { action: 'complete'; replicas: number; migration: string; pods: string[] }
  | {
      action: 'blocked';
      replicas: number;
      target: number;
      reason: 'EvacuationFailed' | 'EvacuationTimedOut';
      message: string;
      migration: string;
      retry: boolean;
    };

export interface ScaleInput {
  pool: string;
  /** Replicas the Deployment has now (spec.replicas), or the desired value when it does not exist yet. */
  current: number;
  /** Replicas wanted (desiredReplicas). */
  desired: number;
  /** The pool's live (not terminating) worker pods with their session counts. */
  workers: readonly WorkerLoad[];
  /** The scale-down migration of this pool still relevant (see the reconciler), if any. */
  evacuation?: EvacuationState;
  now: number;
  /** maintenance.drainDeadlineSeconds, in ms: a migration not done by then counts as failed. */
  deadlineMs: number;
  /** After a failed evacuation, try again this long after it ended. */
  retryAfterMs: number;
}

export function planScale(input: ScaleInput): ScalePlan {
  const { current, desired, workers, evacuation, now } = input;
  if (desired >= current) return { action: 'set', replicas: desired, reason: desired > current ? 'ScaleUp' : 'Steady', annotate: [] };

  const live = new Set(workers.map((w) => w.name));
  if (evacuation) {
    const present = evacuation.pods.filter((p) => live.has(p));
    if (present.length > 0) {
      if (evacuation.phase === 'Succeeded') {
        return { action: 'complete', replicas: Math.max(desired, current - present.length), migration: evacuation.name, pods: present };
      }
      if (evacuation.phase === 'Failed' || evacuation.phase === 'RolledBack') {
        const ended = evacuation.completedAt ?? evacuation.createdAt;
        return {
          action: 'blocked',
          replicas: current,
          target: desired,
          reason: 'EvacuationFailed',
          message: `evacuation ${evacuation.name} ended ${evacuation.phase}${evacuation.reason ? ` (${evacuation.reason})` : ''}${evacuation.message ? `: ${evacuation.message}` : ''}; keeping ${current} workers`,
          migration: evacuation.name,
          retry: now - ended >= input.retryAfterMs,
        };
      }
      if (now - evacuation.createdAt > input.deadlineMs) {
        return {
          action: 'blocked',
          replicas: current,
          target: desired,
          reason: 'EvacuationTimedOut',
          message: `evacuation ${evacuation.name} (phase ${evacuation.phase ?? 'none'}) did not finish within ${Math.round(input.deadlineMs / 1000)} s; keeping ${current} workers`,
          migration: evacuation.name,
          retry: now - evacuation.createdAt > input.deadlineMs + input.retryAfterMs,
        };
      }
      return { action: 'wait', replicas: current, target: desired, migration: evacuation.name, pods: present };
    }
  }

  // Replicas without a pod yet (being created) go first: nothing to evacuate there.
  const unpopulated = Math.max(0, current - workers.length);
  const needed = current - desired - unpopulated;
  if (needed <= 0) return { action: 'set', replicas: desired, reason: 'ScaleDown', annotate: [] };
  const victims = chooseVictims(workers, needed);
  const names = victims.map((v) => v.name);
  // Empty workers (or a pool going to zero, where there is nowhere to move to) need no migration:
  // sessions stay in the store, unowned ones are claimed by the next worker that serves them.
  if (desired === 0 || victims.every((v) => v.sessions === 0))
    return { action: 'set', replicas: desired, reason: 'ScaleDown', annotate: names };
  return { action: 'evacuate', replicas: current, target: desired, victims: names, migration: evacuationName(input.pool, names) };
}
