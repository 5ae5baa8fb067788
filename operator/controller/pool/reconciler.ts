// The SessionPool reconciler: level-triggered, one pool key ("namespace/name") at a time. It
// reads the pool and its children from the informer caches, the counts from the store, and
// walks a sequence of guarded steps:
//   finalizer -> store read -> dead workers -> admin (token Secret, live mode switch)
//   -> scaling -> apply children -> status
// A reconcile that changes nothing writes nothing: children are applied only when out of date
// (children.ts), and status only when it changed. Scale-downs that must empty workers first go
// through a SessionMigration (evacuation.ts). The periodic sweep runs from the Sweeper
// (sweeper.ts), not from reconciles.
// Deletion runs the finalizer instead: delete the pool's sessions (deletionPolicy Delete) or
// keep them (Retain), then remove the finalizer. Decisions live in pure modules (desired.ts,
// scaling.ts, status.ts, drain-observation.ts); this file only does I/O in order.
import type { KubernetesObject, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { POOL_FINALIZER, POOL_LABEL, type SessionMigration, type SessionPool } from '../../api/index.ts';
import type { ReconcileResult } from '../../kube/controller.ts';
import { errorMessage, isConflict, isNotFound, statusCode } from '../../kube/errors.ts';
import type { EventType } from '../../kube/events.ts';
import { parseKey } from '../../kube/informer.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import type { SessionStore } from '../../store/index.ts';
import { AdminStep } from './admin.ts';
import type { AdminCall } from './worker-admin.ts';
import type { WorkerNetworkPolicySettings } from './network-policy.ts';
import { ChildApplier } from './children.ts';
import { observeDrains } from './drain-observation.ts';
import type { PoolApi } from './client.ts';
import { Evacuations } from './evacuation.ts';
import type { PoolMetrics } from './metrics.ts';
import { deploymentName, storePoolId } from './names.ts';
import { ScaleHistory, desiredReplicas, planScale, type WorkerLoad } from './scaling.ts';
import { deadWorkers, deleteAllSessions, readCounts, releaseWorker, type StoreCounts } from './sessions.ts';
import {
  INSECURE_TLS_NOTE,
  REASONS,
  computeStatus,
  isPodLive,
  isPodTerminating,
  podNames,
  isPodReady,
  statusEqual,
  statusPatch,
  type StoreObservation,
} from './status.ts';
import type { SweepScheduler } from './sweeper.ts';
import { CredentialsError, type StoreClients } from './store-clients.ts';

export { APPLIED_HASH_ANNOTATION } from './names.ts';

export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  getByKey(key: string): T | undefined;
  list(namespace?: string): T[];
  hasSynced(): boolean;
}

export interface EventSink {
  record(involved: KubernetesObject, type: EventType, reason: string, note: string): void;
}

export interface PoolReconcilerDeps {
  api: PoolApi;
  pools: Cache<SessionPool>;
  deployments: Cache<V1Deployment>;
  services: Cache<KubernetesObject>;
  pdbs: Cache<KubernetesObject>;
  pods: Cache<V1Pod>;
  migrations: Cache<SessionMigration>;
  stores: StoreClients;
  events: EventSink;
  metrics?: PoolMetrics;
  logger?: Logger;
  now?: () => number;
  /**
   * How often an autoscaled pool's counts are read (by the sweeper, without a reconcile, when
   * shorter than its sweep interval). Default 15 s.
   */
  autoscaleIntervalMs?: number;
  /**
   * Re-apply unchanged children this often anyway (a safety net; drift of a child's spec is
   * repaired at once through its generation). Default 6 h; 0 disables.
   */
  reapplyIntervalMs?: number;
  /** Runs the periodic sweep of each pool (the controller's Sweeper); none: no sweeps. */
  sweeps?: SweepScheduler;
  /** After a failed scale-down evacuation, try again after this long. Default 2 min. */
  evacuationRetryMs?: number;
  /** While waiting on an evacuation, look again this often (informer events come sooner). Default 5 s. */
  evacuationPollMs?: number;
  /** The operator's call to a worker's POST /admin/mode; default HTTP (worker-admin.ts). */
  adminCall?: AdminCall;
  /** Each pool's worker NetworkPolicy is applied when both are set (network-policy.ts). */
  workerNetworkPolicy?: WorkerNetworkPolicySettings;
  networkPolicies?: Cache<KubernetesObject>;
}

export class PoolReconciler {
  private readonly deps: PoolReconcilerDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  readonly history = new ScaleHistory();
  private readonly children: ChildApplier;
  private readonly evacuations: Evacuations;
  private readonly admin: AdminStep;

  constructor(deps: PoolReconcilerDeps) {
    this.deps = deps;
    this.log = deps.logger ?? createLogger('pool-reconciler');
    this.now = deps.now ?? Date.now;
    this.children = new ChildApplier(deps, this.now);
    this.evacuations = new Evacuations(deps, this.log, this.now);
    this.admin = new AdminStep({ ...deps, logger: this.log, now: this.now });
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const pool = this.deps.pools.getByKey(key);
    if (!pool) {
      await this.forget(key);
      return {};
    }
    if (pool.metadata.deletionTimestamp) return this.finalize(key, pool);
    if (!(pool.metadata.finalizers ?? []).includes(POOL_FINALIZER)) {
      // Finalizer first: no session may be written before we can clean up after the pool.
      await this.deps.api.setPoolFinalizers(pool, [...(pool.metadata.finalizers ?? []), POOL_FINALIZER]);
      // The update event brings the pool back with the finalizer; go on from there.
      return {};
    }
    return this.sync(key, pool);
  }

  private async forget(key: string): Promise<void> {
    this.history.delete(key);
    this.deps.sweeps?.forget(key);
    this.children.forget(key);
    this.evacuations.forget(key);
    this.admin.forget(key);
    const { namespace, name } = parseKey(key);
    this.deps.metrics?.forget(namespace ?? '', name);
    await this.deps.stores.release(key);
  }

  // ---- deletion ------------------------------------------------------------------------------

  private async finalize(key: string, pool: SessionPool): Promise<ReconcileResult> {
    const finalizers = pool.metadata.finalizers ?? [];
    if (!finalizers.includes(POOL_FINALIZER)) return {};
    if (pool.spec.deletionPolicy === 'Delete') {
      let store: SessionStore;
      try {
        store = await this.deps.stores.forPool(key, pool);
        // By the pool's identity: only this pool's keys, never a same-named pool's of another namespace.
        const deleted = await this.deps.stores.call('deleteAll', deleteAllSessions(store, storePoolId(pool)));
        this.log.info({ pool: key, deleted }, 'pool deleted: its sessions were removed from the store');
        this.deps.events.record(
          pool,
          'Normal',
          'SessionsDeleted',
          `deleted ${deleted} sessions of the pool from the store (deletionPolicy Delete)`,
        );
      } catch (err) {
        const message = `cannot delete the pool's sessions: ${errorMessage(err)}; the pool stays until the store answers (or set deletionPolicy: Retain)`;
        this.deps.events.record(pool, 'Warning', REASONS.StoreUnreachable, message);
        await this.patchStatus(pool, {
          ...pool.status,
          phase: 'Terminating',
          conditions: computeStatus({
            pool,
            deployment: undefined,
            pods: [],
            store: {
              reachable: false,
              reason: err instanceof CredentialsError ? REASONS.CredentialsUnavailable : REASONS.StoreUnreachable,
              error: message,
            },
            scale: { desiredReplicas: pool.status?.desiredReplicas ?? 0 },
            now: new Date(this.now()),
          }).conditions,
        }).catch(() => undefined);
        throw new Error(message, { cause: err });
      }
    } else {
      this.deps.events.record(pool, 'Normal', 'SessionsRetained', 'pool deleted: its sessions stay in the store (deletionPolicy Retain)');
    }
    await this.deps.api.setPoolFinalizers(
      pool,
      finalizers.filter((f) => f !== POOL_FINALIZER),
    );
    await this.forget(key);
    return {};
  }

  // ---- the steps -----------------------------------------------------------------------------

  private async sync(key: string, pool: SessionPool): Promise<ReconcileResult> {
    const now = this.now();
    const namespace = pool.metadata.namespace ?? 'default';
    const name = pool.metadata.name ?? '';
    const pods = this.deps.pods.list(namespace).filter((p) => p.metadata?.labels?.[POOL_LABEL] === name);
    const livePods = pods.filter(isPodLive);
    const liveNames = podNames(pods, isPodLive);

    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (step: string) => {
      const t = performance.now();
      timings[step] = Math.round((t - mark) * 10) / 10;
      mark = t;
    };
    // Asked for, but never silent: events aggregate, so this is one Event with a growing count.
    if (pool.spec.store.tls.enabled && pool.spec.store.tls.insecureSkipVerify)
      this.deps.events.record(pool, 'Warning', REASONS.InsecureTLS, INSECURE_TLS_NOTE);
    // Store: counts, dead workers; the sweep runs on its own schedule.
    const { observation, counts, store } = await this.readStore(key, pool);
    lap('storeRead');
    if (store && counts && this.deps.pods.hasSynced())
      await this.releaseDeadWorkers(pool, store, counts, liveNames, podNames(pods, isPodTerminating));
    if (store) this.deps.sweeps?.schedule(key, this.checkIntervalMs(pool));
    lap('storeMaintenance');
    // Admin: the token Secret exists before the Deployment names it; live workers take spec.sessionMode.
    const admin = await this.admin.run(key, pool, counts?.workers, liveNames);
    lap('admin');

    // Scaling.
    const deployment = this.deps.deployments.get(deploymentName(name), namespace);
    const current = deployment?.spec?.replicas;
    const stabilized = desiredReplicas(pool, observation.activeSessions, current, this.history.get(key, pool.status, now), now);
    this.history.set(key, stabilized.history);
    const workers: WorkerLoad[] = livePods.map((p) => ({
      name: p.metadata?.name ?? '',
      sessions: counts?.byOwner.get(p.metadata?.name ?? '') ?? 0,
      ready: isPodReady(p),
    }));
    const evacuation = this.evacuations.find(key, pool, liveNames);
    const plan = planScale({
      pool: name,
      current: current ?? stabilized.desired,
      desired: stabilized.desired,
      workers,
      ...(evacuation ? { evacuation } : {}),
      now,
      deadlineMs: pool.spec.maintenance.drainDeadlineSeconds * 1000,
      retryAfterMs: this.deps.evacuationRetryMs ?? 120_000,
    });
    // Sessions unknown (store unreachable) means workers' loads are unknown: never pick victims blind.
    const scale =
      observation.reachable || plan.action === 'set'
        ? await this.evacuations.execute(pool, plan, current)
        : this.evacuations.hold(current ?? stabilized.desired, stabilized.desired);

    lap('scaling');
    // Children.
    // Without the admin token the Deployment is left as it is (it would name a Secret we do not know).
    let applyError: string | undefined = admin.problem;
    let lagging = false;
    try {
      if (admin.secretUid !== undefined) lagging = await this.children.apply(key, pool, scale.replicas, now, admin.secretUid);
    } catch (err) {
      if (isConflict(err) || (statusCode(err) ?? 500) >= 500 || statusCode(err) === undefined) throw err;
      // 4xx: the apiserver refuses what the spec asks (e.g. an invalid pod template): say so.
      applyError = `the apiserver refused a child of the pool: ${errorMessage(err)}`;
      this.deps.events.record(pool, 'Warning', REASONS.ApplyFailed, applyError);
    }
    lap('apply');
    const scaledAt = current !== undefined && scale.replicas !== current ? new Date(now) : undefined;
    if (scaledAt) {
      this.deps.events.record(
        pool,
        'Normal',
        scale.replicas > (current ?? 0) ? 'ScaledUp' : 'ScaledDown',
        `workers ${current} -> ${scale.replicas}`,
      );
    }

    // Status.
    const status = computeStatus({
      pool,
      deployment: this.deps.deployments.get(deploymentName(name), namespace),
      pods,
      store: observation,
      scale: { ...scale.observation, ...(scaledAt ? { scaledAt } : {}) },
      ...(applyError ? { applyError } : {}),
      drain: observeDrains(pool, this.deps.migrations.list(namespace), livePods),
      now: new Date(now),
    });
    const statusChanged = !statusEqual(pool.status, status);
    if (statusChanged) await this.patchStatus(pool, status);
    lap('status');
    this.deps.metrics?.observe(pool, status);
    this.log.debug({ pool: key, ms: timings, statusChanged }, 'reconciled');

    if (!observation.reachable) {
      // Backoff requeue through the work queue; the status already says why.
      throw new Error(`pool ${key}: ${observation.error ?? 'session store unreachable'}`);
    }
    if (admin.problem) throw new Error(`pool ${key}: ${admin.problem}`);
    const requeues = [lagging ? 5_000 : scale.requeueAfterMs, admin.requeueAfterMs].filter((ms): ms is number => ms !== undefined);
    const next = this.nextCheck(key, pool, requeues.length > 0 ? Math.min(...requeues) : undefined, stabilized.desired, current, now);
    if (next !== undefined) this.log.debug({ pool: key, requeueAfterMs: next, lagging, plan: plan.action }, 'requeue');
    return next === undefined ? {} : { requeueAfterMs: next };
  }

  /**
   * How often the sweeper reads the pool's counts (and enqueues it when they change its status
   * or scaling): every sweep interval, and for an autoscaled pool at least every autoscale
   * interval. Session counts live in Redis (no watch), so this read is the one periodic call.
   */
  checkIntervalMs(pool: SessionPool): number {
    const sweepMs = pool.spec.sessions.sweepIntervalSeconds * 1000;
    return pool.spec.autoscaling.enabled ? Math.min(sweepMs, this.deps.autoscaleIntervalMs ?? 15_000) : sweepMs;
  }

  private async readStore(
    key: string,
    pool: SessionPool,
  ): Promise<{ observation: StoreObservation; counts?: StoreCounts; store?: SessionStore }> {
    try {
      const store = await this.deps.stores.forPool(key, pool);
      const counts = await this.deps.stores.call('counts', readCounts(store, storePoolId(pool)));
      const observation: StoreObservation = { reachable: true, activeSessions: counts.active, byOwner: counts.byOwner };
      if (counts.anonymous !== undefined) observation.anonymousSessions = counts.anonymous;
      return { observation, counts, store };
    } catch (err) {
      const credentials = err instanceof CredentialsError;
      const error = credentials ? errorMessage(err) : `session store unreachable: ${errorMessage(err)}`;
      this.deps.events.record(pool, 'Warning', credentials ? REASONS.CredentialsUnavailable : REASONS.StoreUnreachable, error);
      this.log.warn({ pool: key, err: errorMessage(err) }, 'cannot read the session store');
      return { observation: { reachable: false, reason: credentials ? REASONS.CredentialsUnavailable : REASONS.StoreUnreachable, error } };
    }
  }

  private async releaseDeadWorkers(
    pool: SessionPool,
    store: SessionStore,
    counts: StoreCounts,
    live: ReadonlySet<string>,
    terminating: ReadonlySet<string>,
  ): Promise<void> {
    const name = pool.metadata.name ?? '';
    for (const worker of deadWorkers(counts, live, terminating)) {
      try {
        const result = await this.deps.stores.call('releaseWorker', releaseWorker(store, storePoolId(pool), worker));
        const held = counts.byOwner.get(worker) ?? 0;
        counts.byOwner.delete(worker);
        counts.byOwner.set('', (counts.byOwner.get('') ?? 0) + held);
        if (result.released > 0 || held > 0) {
          this.deps.events.record(
            pool,
            'Normal',
            'WorkerSessionsReleased',
            `worker ${worker} is gone: released ${result.released} of its sessions to the pool`,
          );
        }
        this.log.info({ pool: name, worker, ...result }, 'dead worker: sessions released');
      } catch (err) {
        this.log.warn({ pool: name, worker, err: errorMessage(err) }, 'could not release a dead worker');
      }
    }
  }

  private async patchStatus(pool: SessionPool, status: SessionPool['status']): Promise<void> {
    try {
      await this.deps.api.patchPoolStatus(pool, statusPatch(pool.status, status ?? {}));
    } catch (err) {
      if (isNotFound(err)) return; // deleted meanwhile
      throw err;
    }
  }

  private nextCheck(
    key: string,
    pool: SessionPool,
    planRequeue: number | undefined,
    desired: number,
    current: number | undefined,
    now: number,
  ): number | undefined {
    const candidates: number[] = [];
    if (planRequeue !== undefined) candidates.push(planRequeue);
    // No periodic requeue for autoscaling: the sweeper reads the counts and enqueues the pool
    // when they change its status or desired size (refresh.ts).
    if (pool.spec.autoscaling.enabled) {
      // A scale-down held by the window: look again when the oldest higher recommendation ages out.
      if (current !== undefined && desired === current) {
        const windowMs = pool.spec.autoscaling.scaleDownStabilizationSeconds * 1000;
        const history = this.history.get(key, pool.status, now);
        const oldest = history.find((r) => r.replicas >= current && r.replicas > (history.at(-1)?.replicas ?? current));
        if (oldest) candidates.push(Math.max(250, oldest.at + windowMs - now + 50));
      }
    }
    return candidates.length > 0 ? Math.min(...candidates) : undefined;
  }
}
