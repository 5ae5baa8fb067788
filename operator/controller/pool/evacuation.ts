// Scale-down evacuation for the pool reconciler: finds the pool's scale-down SessionMigration
// that still matters, and carries out the scaling plan (scaling.ts decides it): marks victims,
// creates, waits on, or retries the migration. Remembers the migrations it created until the
// cache shows them, so a lagging cache never makes it create a second one.
import {
  API_VERSION,
  POOL_LABEL,
  SESSION_MIGRATION_KIND,
  TERMINAL_MIGRATION_PHASES,
  defaultSessionMigrationSpec,
  type CurrentEvacuation,
  type SessionMigration,
  type SessionPool,
} from '../../api/index.ts';
import { errorMessage, isNotFound, statusCode } from '../../kube/errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { isPoolWorkerPod } from '../shared/worker-pods.ts';
import { ownerReference } from './desired.ts';
import {
  PURPOSE_LABEL,
  SCALE_DOWN_PURPOSE,
  SCALE_DOWN_TARGET_ANNOTATION,
  POD_DELETION_COST_ANNOTATION,
  VICTIM_DELETION_COST,
} from './names.ts';
import type { PoolReconcilerDeps } from './reconciler.ts';
import type { EvacuationState, ScalePlan } from './scaling.ts';
import { REASONS, type ScaleObservation } from './status.ts';

export type EvacuationDeps = Pick<PoolReconcilerDeps, 'api' | 'migrations' | 'pods' | 'events' | 'evacuationRetryMs' | 'evacuationPollMs'>;

/** The replicas to set, what status says about scaling, and when to look again. */
export interface ScaleOutcome {
  replicas: number;
  observation: ScaleObservation;
  requeueAfterMs?: number;
}

function timestamp(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

export class Evacuations {
  private readonly deps: EvacuationDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Migrations created but maybe not in the cache yet: never create a second one meanwhile. */
  private readonly created = new Map<string, EvacuationState>();

  constructor(deps: EvacuationDeps, log: Logger, now: () => number) {
    this.deps = deps;
    this.log = log;
    this.now = now;
  }

  forget(key: string): void {
    this.created.delete(key);
  }

  /** The scale-down migration of this pool that still matters: in flight, or ended with victims left. */
  find(key: string, pool: SessionPool, live: ReadonlySet<string>): EvacuationState | undefined {
    const namespace = pool.metadata.namespace ?? 'default';
    const candidates = this.deps.migrations
      .list(namespace)
      .filter(
        (m) =>
          m.spec.poolRef.name === pool.metadata.name &&
          m.metadata.labels?.[PURPOSE_LABEL] === SCALE_DOWN_PURPOSE &&
          !m.metadata.deletionTimestamp &&
          (m.metadata.ownerReferences ?? []).some((r) => r.uid === pool.metadata.uid),
      )
      .sort((a, b) => (timestamp(b.metadata.creationTimestamp) ?? 0) - (timestamp(a.metadata.creationTimestamp) ?? 0));
    const relevant =
      candidates.find((m) => !TERMINAL_MIGRATION_PHASES.includes(m.status?.phase ?? 'Pending')) ??
      candidates.find((m) => (m.spec.evacuate?.pods ?? []).some((p) => live.has(p)));
    const created = this.created.get(key);
    if (created && (this.deps.migrations.get(created.name, namespace) || this.now() - created.createdAt > 30_000)) this.created.delete(key);
    else if (created && created.pods.some((p) => live.has(p))) return created;
    if (!relevant) return undefined;
    const state: EvacuationState = {
      name: relevant.metadata.name ?? '',
      phase: relevant.status?.phase,
      pods: relevant.spec.evacuate?.pods ?? [],
      createdAt: timestamp(relevant.metadata.creationTimestamp) ?? this.now(),
    };
    const completedAt = timestamp(relevant.status?.completionTime);
    if (completedAt !== undefined) state.completedAt = completedAt;
    if (relevant.status?.reason) state.reason = relevant.status.reason;
    if (relevant.status?.message) state.message = relevant.status.message;
    return state;
  }

  /** No action: keep the size, report what is desired (used while workers' loads are unknown). */
  hold(replicas: number, desired: number): ScaleOutcome {
    return { replicas, observation: { desiredReplicas: desired } };
  }

  /** Carries out a scaling plan: marks victims, creates, waits on, or retries the migration. */
  async execute(pool: SessionPool, plan: ScalePlan, current: number | undefined): Promise<ScaleOutcome> {
    const namespace = pool.metadata.namespace ?? 'default';
    const name = pool.metadata.name ?? '';
    const poll = this.deps.evacuationPollMs ?? 5_000;
    const evacuationStatus = (migration: string, pods: string[], createdAt?: number): CurrentEvacuation => ({
      migration,
      reason: 'ScaleDown',
      pods: pods.slice(0, 50),
      startTime: new Date(createdAt ?? this.now()).toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    switch (plan.action) {
      case 'set': {
        await this.markVictims(name, namespace, plan.annotate);
        return { replicas: plan.replicas, observation: { desiredReplicas: plan.replicas } };
      }
      case 'evacuate': {
        await this.markVictims(name, namespace, plan.victims);
        const migration: SessionMigration = {
          apiVersion: API_VERSION,
          kind: SESSION_MIGRATION_KIND,
          metadata: {
            name: plan.migration,
            namespace,
            labels: { [POOL_LABEL]: name, [PURPOSE_LABEL]: SCALE_DOWN_PURPOSE },
            annotations: { [SCALE_DOWN_TARGET_ANNOTATION]: String(plan.target) },
            ownerReferences: [ownerReference(pool)],
          },
          spec: defaultSessionMigrationSpec({
            poolRef: { name },
            type: 'Evacuate',
            // Kept: the scale-down removes them (lowest deletion cost); deleted, the Deployment would replace them.
            evacuate: { pods: plan.victims, evictPods: false, keepSourcePods: true },
            deadlineSeconds: pool.spec.maintenance.drainDeadlineSeconds,
            onFailure: 'Rollback',
          }),
        };
        try {
          await this.deps.api.createMigration(migration);
        } catch (err) {
          if (statusCode(err) !== 409) {
            const unavailable = isNotFound(err);
            const message = unavailable
              ? `cannot evacuate ${plan.victims.join(', ')}: the SessionMigration API is not installed (${errorMessage(err)}); keeping ${plan.replicas} workers`
              : `cannot create evacuation ${plan.migration}: ${errorMessage(err)}; keeping ${plan.replicas} workers`;
            this.deps.events.record(pool, 'Warning', REASONS.EvacuationUnavailable, message);
            if (!unavailable && (statusCode(err) ?? 500) >= 500) throw err;
            return {
              replicas: plan.replicas,
              observation: { desiredReplicas: plan.target, blocked: { reason: REASONS.EvacuationUnavailable, message } },
              requeueAfterMs: 60_000,
            };
          }
        }
        this.created.set(`${namespace}/${name}`, { name: plan.migration, phase: 'Pending', pods: plan.victims, createdAt: this.now() });
        this.deps.events.record(
          pool,
          'Normal',
          'EvacuatingForScaleDown',
          `evacuating ${plan.victims.join(', ')} through SessionMigration ${plan.migration} before scaling ${plan.replicas} -> ${plan.target}`,
        );
        return {
          replicas: plan.replicas,
          observation: { desiredReplicas: plan.target, evacuation: evacuationStatus(plan.migration, plan.victims) },
          requeueAfterMs: poll,
        };
      }
      case 'wait': {
        const state = this.deps.migrations.get(plan.migration, namespace);
        return {
          replicas: plan.replicas,
          observation: {
            desiredReplicas: plan.target,
            evacuation: evacuationStatus(plan.migration, plan.pods, timestamp(state?.metadata.creationTimestamp)),
          },
          requeueAfterMs: poll,
        };
      }
      case 'complete': {
        this.deps.events.record(
          pool,
          'Normal',
          'EvacuationSucceeded',
          `SessionMigration ${plan.migration} emptied ${plan.pods.join(', ')}: scaling ${current ?? '?'} -> ${plan.replicas}`,
        );
        return { replicas: plan.replicas, observation: { desiredReplicas: plan.replicas } };
      }
      case 'blocked': {
        this.deps.events.record(pool, 'Warning', plan.reason, plan.message);
        if (plan.retry) {
          try {
            await this.deps.api.deleteMigration(namespace, plan.migration);
            this.log.info({ pool: name, migration: plan.migration }, 'retrying a failed scale-down evacuation');
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        return {
          replicas: plan.replicas,
          observation: { desiredReplicas: plan.target, blocked: { reason: plan.reason, message: plan.message } },
          requeueAfterMs: plan.retry ? 1_000 : (this.deps.evacuationRetryMs ?? 120_000),
        };
      }
    }
  }

  /** Only the pool's own workers are annotated: the operator patches no other pod (docs/chart.md, "Security"). */
  private async markVictims(pool: string, namespace: string, pods: readonly string[]): Promise<void> {
    for (const pod of pods) {
      const cached = this.deps.pods.get(pod, namespace);
      if (!cached || !isPoolWorkerPod(cached, pool)) {
        this.log.debug({ pool, pod }, 'not a worker pod of the pool: deletion cost not set');
        continue;
      }
      if (cached.metadata?.annotations?.[POD_DELETION_COST_ANNOTATION] === VICTIM_DELETION_COST) continue;
      try {
        await this.deps.api.annotatePod(namespace, pod, { [POD_DELETION_COST_ANNOTATION]: VICTIM_DELETION_COST });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
}
