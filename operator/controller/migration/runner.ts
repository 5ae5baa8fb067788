// Runs one SessionMigration from wherever its status says it is to a terminal phase:
//   Pending -> Planning (resolve sources and targets, plan, write the plan)
//   -> dry run: Succeeded, nothing moved
//   -> Running: mark Evacuate sources draining, run the engine batch by batch (progress to
//      status), journal uid in status.journalKey; an Evacuate repeats in rounds while sessions
//      are left on its sources (or re-plans after a target died and the round rolled back);
//      then, with evictPods, evicts the source pods through the Eviction API
//   -> Succeeded | Failed | RolledBack, with reason, message, times, conditions, Events, metrics.
// A Running status found after an operator restart resumes its round from the journal. The
// whole run is bounded by spec.deadlineSeconds from status.startTime.
import type { V1Pod } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { MigrationPhase, MigrationProgress, SessionMigration, SessionMigrationStatus, SessionPool } from '../../api/index.ts';
import { setCondition } from '../../kube/conditions.ts';
import type { EventType } from '../../kube/events.ts';
import { MigrationExecutor, MigrationIncompleteError, MigrationInterruptedError, type MigrationResult } from '../../migration/executor.ts';
import type { JournalHeader } from '../../migration/journal.ts';
import { migrationMetrics } from '../../migration/metrics.ts';
import { PlanError, type Plan } from '../../migration/planner.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import type { SessionStore } from '../../store/types.ts';
import { evictPods, type EvictionApi } from './eviction.ts';
import {
  CONDITION_PODS_EVICTED,
  REASONS,
  apiPlan,
  currentPhase,
  isTerminal,
  journalHeaderKey,
  journalUidFromKey,
  nextStep,
  remainingMs,
  roundOf,
  roundUid,
  transition,
} from './phases.ts';
import { buildPlan } from './plan.ts';
import { ResolveError, resolveSources } from './resolve.ts';
import { splitPoolWorkers } from '../shared/worker-pods.ts';
import type { PoolStore } from './store-access.ts';

import { FORCE_DRAIN_ANNOTATION } from '../pool/names.ts';

export { FORCE_DRAIN_ANNOTATION };
export const CONDITION_FORCED = 'ForcedRelease';
/** Most evacuation rounds (leftovers, or re-plans after a target died). */
export const MAX_ROUNDS = 5;

export interface RunnerDeps {
  getPool(namespace: string, name: string): Promise<SessionPool | undefined>;
  listPods(namespace: string): V1Pod[];
  drainingNodes(): ReadonlySet<string>;
  storeFor(pool: SessionPool): Promise<PoolStore>;
  /** Writes status (merge patch on /status); the caller keeps it in sync with the object. */
  writeStatus(migration: SessionMigration, status: SessionMigrationStatus): Promise<void>;
  event(migration: SessionMigration, type: EventType, reason: string, note: string): void;
  eviction: EvictionApi;
  registry?: Registry;
  logger?: Logger;
  now?: () => number;
  /** Executor tuning (tests). */
  graceMs?: number;
  /** Poll interval while waiting for a target or a budget. */
  waitMs?: number;
  /** The migration as the cache has it now (a force annotation added while it waits). */
  latest?(migration: SessionMigration): SessionMigration | undefined;
}

export function isForced(obj: { metadata?: { annotations?: Record<string, string> } }): boolean {
  return obj.metadata?.annotations?.[FORCE_DRAIN_ANNOTATION] === 'true';
}

function notPoolPodsNote(pods: readonly string[], pool: string): string {
  return `not evicted, not workers of pool ${pool}: ${pods.join(', ')}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Totals {
  moved: number;
  failed: number;
}

export class MigrationRunner {
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(deps: RunnerDeps) {
    this.deps = deps;
    this.log = deps.logger ?? createLogger('migration-controller');
    this.now = deps.now ?? Date.now;
  }

  /** Drives the migration to a terminal phase. Throws only for errors worth a retry (store unreachable before the deadline). */
  async run(input: SessionMigration, signal: AbortSignal): Promise<void> {
    const m = structuredClone(input);
    const ctx = new RunContext(this.deps, m, this.log, this.now);
    const phase = currentPhase(m);
    if (isTerminal(phase)) {
      if (isForced(m) && m.spec.type === 'Evacuate') await this.forceRelease(ctx);
      return;
    }
    const pool = await this.deps.getPool(ctx.namespace, m.spec.poolRef.name);
    if (!pool) {
      await ctx.to(
        'Failed',
        { reason: REASONS.PoolNotFound, message: `SessionPool ${m.spec.poolRef.name} not found in ${ctx.namespace}` },
        'Warning',
      );
      return;
    }
    let ps: PoolStore;
    try {
      ps = await this.deps.storeFor(pool);
    } catch (error) {
      if (ctx.remaining() > 0) throw error;
      await ctx.to(
        'Failed',
        { reason: REASONS.StoreUnreachable, message: `session store of pool ${pool.metadata.name}: ${String(error)}` },
        'Warning',
      );
      return;
    }
    ctx.ps = ps;
    if (phase === 'Pending')
      await ctx.to('Planning', { reason: REASONS.Planning, message: `planning a ${m.spec.type}${m.spec.dryRun ? ' (dry run)' : ''}` });
    const step = nextStep(m, journalUidFromKey);
    try {
      if (step.kind === 'resume') await this.execute(ctx, roundOf(ctx.uid, step.journalUid) ?? 0, true, undefined, signal);
      else await this.planAndExecute(ctx, signal);
    } catch (error) {
      if (error instanceof MigrationInterruptedError) return;
      if (error instanceof MigrationIncompleteError) throw error;
      if (ctx.remaining() > 0 && !(error instanceof ResolveError) && !(error instanceof PlanError)) throw error;
      await this.failAndRelease(ctx, error);
    }
  }

  private async planAndExecute(ctx: RunContext, signal: AbortSignal): Promise<void> {
    const m = ctx.m;
    const built = await this.planWithWait(ctx, undefined, signal);
    ctx.sources = built.sources;
    const plan = apiPlan(built.plan.summary);
    if (m.spec.dryRun) {
      await ctx.to(
        'Succeeded',
        {
          reason: REASONS.DryRun,
          message: `dry run: ${built.plan.summary.totalSessions} sessions would move${built.sources.length ? ` from ${built.sources.join(', ')}` : ''}; nothing moved`,
          plan,
          progress: { moved: 0, remaining: built.plan.summary.totalSessions, failed: 0 },
        },
        'Normal',
      );
      return;
    }
    await ctx.to('Planning', { reason: REASONS.Planned, message: `${built.plan.summary.totalSessions} sessions to move`, plan });
    await this.execute(ctx, 0, false, built.plan, signal);
  }

  /** Plans; an Evacuate with no target yet waits for one (a replacement pod) until the deadline. */
  private async planWithWait(
    ctx: RunContext,
    sources: readonly string[] | undefined,
    signal: AbortSignal,
  ): Promise<{ plan: Plan; sources: string[] }> {
    for (;;) {
      try {
        return await buildPlan({
          migration: ctx.m,
          pool: ctx.ps!.pool,
          store: ctx.ps!.store,
          pods: this.deps.listPods(ctx.namespace),
          drainingNodes: this.deps.drainingNodes(),
          ...(sources ? { sources } : {}),
        });
      } catch (error) {
        const waitable = error instanceof ResolveError && error.reason === 'NoTargets' && ctx.m.spec.type === 'Evacuate';
        const forced = isForced(this.deps.latest?.(ctx.m) ?? ctx.m);
        if (!waitable || ctx.remaining() <= (this.deps.waitMs ?? 1000) || signal.aborted || forced) throw error;
        if (!ctx.waitingNoted) {
          ctx.waitingNoted = true;
          ctx.event('Warning', REASONS.NoTargets, `${error.message}; waiting up to the deadline`);
        }
        await sleep(this.deps.waitMs ?? 1000);
      }
    }
  }

  /** Rounds from `startRound` on; the first may resume its journal. */
  private async execute(
    ctx: RunContext,
    startRound: number,
    resumeFirst: boolean,
    firstPlan: Plan | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const m = ctx.m;
    const ps = ctx.ps!;
    const evacuate = m.spec.type === 'Evacuate';
    if (evacuate && !ctx.sources) ctx.sources = this.sourcesFromStatus(ctx) ?? resolveSources(m.spec, this.deps.listPods(ctx.namespace));
    const totals = await this.priorTotals(ctx, startRound);
    let last: MigrationResult | undefined;
    for (let round = startRound; round < MAX_ROUNDS; round++) {
      const juid = roundUid(ctx.uid, round);
      // Sources are told to drain (stop taking new work, report not ready, release what they
      // still hold) only once a round has moved their sessions (below): a worker told earlier
      // releases its leases while the fenced moves run, and its sessions end unowned, not moved.
      let header: JournalHeader | null = null;
      if (round === startRound && resumeFirst) header = await ps.journal.header(juid);
      const executor = this.executor(ctx, ps, totals, signal);
      let result: MigrationResult;
      if (header) {
        if (round === startRound)
          ctx.event('Normal', REASONS.Resumed, `resuming round ${round} from journal ${journalHeaderKey(ps.keyPrefix, ps.pool, juid)}`);
        result = await executor.resume(juid);
      } else {
        const plan = round === startRound && firstPlan ? firstPlan : (await this.planWithWait(ctx, ctx.sources, signal)).plan;
        if (plan.summary.totalSessions === 0 && round > 0) break;
        await ctx.to('Running', {
          reason: REASONS.Running,
          message:
            round === 0
              ? `moving ${plan.summary.totalSessions} sessions in batches of ${m.spec.batchSize}`
              : `round ${round}: moving ${plan.summary.totalSessions} sessions`,
          journalKey: journalHeaderKey(ps.keyPrefix, ps.pool, juid),
          progress: { moved: totals.moved, remaining: plan.summary.totalSessions, failed: totals.failed },
        });
        if (plan.summary.totalSessions === 0) {
          last = undefined;
          break;
        }
        result = await executor.run({
          uid: juid,
          pool: ps.pool,
          plan,
          batchSize: m.spec.batchSize,
          onFailure: m.spec.onFailure,
          deadlineMs: Math.max(1, ctx.remaining()),
        });
      }
      last = result;
      totals.moved += result.progress.moved - result.progress.rolledBack;
      totals.failed += result.progress.failed;
      ctx.progress = { moved: totals.moved, remaining: result.progress.remaining, failed: totals.failed };
      if (!evacuate) break;
      if (result.phase === 'Succeeded') {
        await this.markDraining(ps.store, ps.pool, ctx.sources ?? [], true);
        const left = await this.leftOnSources(ps.store, ps.pool, ctx.sources ?? []);
        if (left === 0) break;
        continue;
      }
      // A target died, or the store failed past the retries (a failover), and the round rolled
      // back (or stopped): re-plan onto the workers left while the deadline allows.
      if ((result.reason === 'TargetGone' || result.reason === 'StoreError') && ctx.remaining() > 0) {
        ctx.event('Warning', 'Replanning', `round ${round} ended ${result.phase} (${result.message}); re-planning onto the workers left`);
        continue;
      }
      break;
    }
    await this.finish(ctx, last, signal);
  }

  private async finish(ctx: RunContext, last: MigrationResult | undefined, signal: AbortSignal): Promise<void> {
    const m = ctx.m;
    const ps = ctx.ps!;
    const progress = ctx.progress ?? { moved: 0, remaining: 0, failed: 0 };
    if (last && last.phase !== 'Succeeded') {
      await this.failAndRelease(ctx, undefined, last);
      return;
    }
    if (m.spec.type === 'Evacuate') {
      await this.ensureDraining(ps.store, ps.pool, ctx.sources ?? []);
      const left = await this.leftOnSources(ps.store, ps.pool, ctx.sources ?? []);
      if (left > 0) {
        await this.failAndRelease(ctx, undefined, undefined, {
          reason: REASONS.SessionsLeft,
          message: `${left} sessions still on ${ctx.sources?.join(', ')} after ${MAX_ROUNDS} rounds`,
        });
        return;
      }
      if (m.spec.evacuate?.evictPods) {
        const evicted = await this.evictSources(ctx, signal);
        if (!evicted) return;
      }
    }
    await ctx.to(
      'Succeeded',
      {
        reason: progress.moved > 0 ? REASONS.Moved : REASONS.NothingToMove,
        message: `${progress.moved} sessions moved${progress.failed ? `, ${progress.failed} changed owner meanwhile (released or moved by their worker)` : ''}`,
        progress: { ...progress, remaining: 0 },
      },
      'Normal',
    );
  }

  /** Evicts the source pods that still exist; false when the deadline passed first (status written). */
  private async evictSources(ctx: RunContext, signal: AbortSignal): Promise<boolean> {
    // Only the pool's own workers are evicted, never another workload's pod a spec names.
    const { workers: pods, refused } = splitPoolWorkers(ctx.sources ?? [], this.deps.listPods(ctx.namespace), ctx.m.spec.poolRef.name);
    if (refused.length > 0) ctx.event('Warning', REASONS.NotPoolPods, notPoolPodsNote(refused, ctx.m.spec.poolRef.name));
    if (pods.length === 0) return true;
    const result = await evictPods(this.deps.eviction, ctx.namespace, pods, {
      deadlineAt: this.now() + Math.max(0, ctx.remaining()),
      signal,
      retryMs: this.deps.waitMs ?? 1000,
    });
    if (result.blocked.length === 0) {
      ctx.condition(CONDITION_PODS_EVICTED, 'True', REASONS.PodsEvicted, `evicted ${result.evicted.join(', ')}`);
      ctx.event('Normal', REASONS.PodsEvicted, `evicted ${result.evicted.join(', ')} after moving their sessions`);
      return true;
    }
    const what = result.blocked.map((b) => `${b.pod} (${b.reason})`).join(', ');
    ctx.condition(CONDITION_PODS_EVICTED, 'False', REASONS.EvictionBlocked, `not evicted by the deadline: ${what}`);
    await ctx.to(
      'Failed',
      {
        reason: REASONS.EvictionBlocked,
        message: `sessions moved, but pods not evicted by the deadline: ${what}. Annotate ${FORCE_DRAIN_ANNOTATION}="true" or delete them`,
        progress: { ...(ctx.progress ?? { moved: 0, failed: 0 }), remaining: 0 },
      },
      'Warning',
    );
    return false;
  }

  /** Terminal failure: status, and sources taking work again (their sessions are back or stayed). */
  private async failAndRelease(
    ctx: RunContext,
    error: unknown,
    result?: MigrationResult,
    explicit?: { reason: string; message: string },
  ): Promise<void> {
    let reason: string;
    let message: string;
    let phase: MigrationPhase = 'Failed';
    if (explicit) ({ reason, message } = explicit);
    else if (result) {
      phase = result.phase === 'RolledBack' ? 'RolledBack' : 'Failed';
      reason = result.reason || 'Failed';
      message = result.message;
    } else if (error instanceof ResolveError) {
      reason = error.reason;
      message = error.message;
    } else if (error instanceof PlanError) {
      reason = error.code === 'NoTargets' || error.code === 'UnknownTarget' ? REASONS.NoTargets : REASONS.InvalidSpec;
      message = error.message;
    } else {
      reason = error instanceof Error && error.message.includes('deadline') ? REASONS.DeadlineExceeded : REASONS.StoreUnreachable;
      message = error instanceof Error ? error.message : String(error);
    }
    const current = currentPhase(ctx.m);
    if (phase !== 'Failed' && current !== 'Running') phase = 'Failed';
    if (ctx.ps && ctx.m.spec.type === 'Evacuate' && ctx.sources && !isForced(ctx.m))
      await this.markDraining(ctx.ps.store, ctx.ps.pool, ctx.sources, false).catch(() => undefined);
    if (!result) migrationMetrics(this.deps.registry).failures.inc({ pool: ctx.m.spec.poolRef.name, type: ctx.m.spec.type, reason });
    await ctx.to(phase, { reason, message, ...(ctx.progress ? { progress: ctx.progress } : {}) }, 'Warning');
    if (isForced(ctx.m) && ctx.m.spec.type === 'Evacuate') await this.forceRelease(ctx);
  }

  /**
   * dspex.io/force-drain: the sessions left on the sources are released to the store unowned
   * (safe in Centralized mode: the data is in Redis and any worker claims it on the next
   * request), then the source pods are evicted. Done once (condition ForcedRelease).
   */
  private async forceRelease(ctx: RunContext): Promise<void> {
    if ((ctx.m.status?.conditions ?? []).some((c) => c.type === CONDITION_FORCED && c.status === 'True')) return;
    const pool = await this.deps.getPool(ctx.namespace, ctx.m.spec.poolRef.name);
    if (!pool) return;
    const ps = (ctx.ps ??= await this.deps.storeFor(pool));
    const sources = ctx.sources ?? this.sourcesFromStatus(ctx) ?? resolveSources(ctx.m.spec, this.deps.listPods(ctx.namespace));
    ctx.sources = sources;
    await this.markDraining(ps.store, ps.pool, sources, true);
    let released = 0;
    for (const source of sources) {
      const ids = await ps.store.listByOwner(ps.pool, source);
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const records = await Promise.all(chunk.map((id) => ps.store.get(id, { pool: ps.pool, touch: false })));
        const moves = records
          .filter((r) => r !== null && r.owner === source)
          .map((r) => ({ sessionId: r!.id, fromOwner: source, fromEpoch: r!.epoch, toOwner: null }));
        const outcomes = await ps.store.moveOwners(ps.pool, moves);
        released += outcomes.filter((o) => o.status === 'moved').length;
      }
    }
    // Only the pool's own workers are evicted, never another workload's pod a spec names.
    const { workers: pods, refused } = splitPoolWorkers(sources, this.deps.listPods(ctx.namespace), ctx.m.spec.poolRef.name);
    const evicted =
      pods.length > 0
        ? await evictPods(this.deps.eviction, ctx.namespace, pods, { deadlineAt: this.now() + 30_000, retryMs: this.deps.waitMs ?? 1000 })
        : { evicted: [], blocked: [] };
    const note = `forced: ${released} sessions released unowned to the store; evicted ${evicted.evicted.join(', ') || 'none'}${evicted.blocked.length ? `; still blocked: ${evicted.blocked.map((b) => b.pod).join(', ')}` : ''}${refused.length ? `; ${notPoolPodsNote(refused, ctx.m.spec.poolRef.name)}` : ''}`;
    ctx.condition(CONDITION_FORCED, 'True', REASONS.ForcedRelease, note);
    ctx.event('Warning', REASONS.ForcedRelease, note);
    await ctx.flush();
  }

  private executor(ctx: RunContext, ps: PoolStore, totals: Totals, signal: AbortSignal): MigrationExecutor {
    return new MigrationExecutor({
      store: ps.store,
      journal: ps.journal,
      ...(this.deps.registry ? { registry: this.deps.registry } : {}),
      logger: this.log.child({ migration: ctx.m.metadata.name, namespace: ctx.namespace }),
      graceMs: this.deps.graceMs ?? 100,
      // 100 ms doubling, 7 retries: about 12 s, longer than a Redis Cluster failover.
      storeRetries: 7,
      retryDelayMs: 100,
      signal,
      onProgress: async (_uid, p) => {
        ctx.progress = { moved: totals.moved + p.moved - p.rolledBack, remaining: p.remaining, failed: totals.failed + p.failed };
        await ctx.progressWrite();
      },
    });
  }

  /** Moved and failed counts of the rounds before `round`, from their journals. */
  private async priorTotals(ctx: RunContext, round: number): Promise<Totals> {
    const totals: Totals = { moved: 0, failed: 0 };
    for (let r = 0; r < round; r++) {
      const header = await ctx.ps!.journal.header(roundUid(ctx.uid, r));
      if (header) {
        totals.moved += header.moved - header.rolledBack;
        totals.failed += header.failed;
      }
    }
    return totals;
  }

  private sourcesFromStatus(ctx: RunContext): string[] | undefined {
    const evacuate = ctx.m.spec.evacuate;
    if (evacuate?.pods) return [...new Set(evacuate.pods)].sort();
    // By node: the plan's sources, when it names them all.
    const plan = ctx.m.status?.plan;
    if (plan && !plan.truncated && plan.moves && plan.moves.length > 0)
      return [...new Set(plan.moves.map((mv) => mv.from).filter((f) => f !== ''))].sort();
    return undefined;
  }

  private async markDraining(store: SessionStore, pool: string, workers: readonly string[], draining: boolean): Promise<void> {
    const registered = new Set((await store.listWorkers(pool)).filter((w) => w.draining !== draining).map((w) => w.worker));
    for (const worker of workers) {
      if (!registered.has(worker)) continue;
      await store
        .setWorkerDraining(pool, worker, draining)
        .catch((error: unknown) => this.log.debug({ worker, err: String(error) }, 'draining flag not set'));
    }
  }

  /**
   * Marks the sources draining and checks it stuck: a worker's heartbeat that read its
   * registration just before the mark writes it back without it, so the mark is repeated until
   * two reads in a row show every registered source draining (about 3 s at most).
   */
  private async ensureDraining(store: SessionStore, pool: string, workers: readonly string[]): Promise<void> {
    const wanted = new Set(workers);
    let streak = 0;
    for (let attempt = 0; attempt < 8 && streak < 2; attempt++) {
      const stale = (await store.listWorkers(pool)).filter((w) => wanted.has(w.worker) && !w.draining).map((w) => w.worker);
      if (stale.length === 0) streak += 1;
      else {
        streak = 0;
        await this.markDraining(store, pool, stale, true);
      }
      await sleep(400);
    }
  }

  private async leftOnSources(store: SessionStore, pool: string, sources: readonly string[]): Promise<number> {
    let left = 0;
    for (const source of sources) {
      const ids = await store.listByOwner(pool, source);
      if (ids.length === 0) continue;
      // The owner index may name sessions that left it meanwhile: count only real owners.
      const records = await Promise.all(ids.map((id) => store.get(id, { pool, touch: false }).catch(() => null)));
      left += records.filter((r) => r?.owner === source).length;
    }
    return left;
  }
}

/** The state of one run: the object, its status as last written, and the writes. */
class RunContext {
  readonly m: SessionMigration;
  readonly uid: string;
  readonly namespace: string;
  ps: PoolStore | undefined;
  sources: string[] | undefined;
  progress: MigrationProgress | undefined;
  waitingNoted = false;
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private lastProgressWrite = 0;

  constructor(deps: RunnerDeps, m: SessionMigration, log: Logger, now: () => number) {
    this.deps = deps;
    this.m = m;
    this.uid = m.metadata.uid ?? m.metadata.name ?? '';
    this.namespace = m.metadata.namespace ?? 'default';
    this.log = log;
    this.now = now;
  }

  remaining(): number {
    return remainingMs(this.m.status?.startTime, this.m.spec.deadlineSeconds, this.now());
  }

  event(type: EventType, reason: string, note: string): void {
    this.deps.event(this.m, type, reason, note);
  }

  condition(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string): void {
    const status0 = this.m.status ?? {};
    status0.conditions = setCondition(
      status0.conditions,
      { type, status, reason, message },
      this.m.metadata.generation,
      new Date(this.now()),
    );
    this.m.status = status0;
  }

  async flush(): Promise<void> {
    await this.deps.writeStatus(this.m, this.m.status ?? {});
  }

  /** Moves to a phase (status write, and an Event when the phase changes). */
  async to(
    phase: MigrationPhase,
    input: { reason: string; message: string; plan?: SessionMigrationStatus['plan']; progress?: MigrationProgress; journalKey?: string },
    type: EventType = 'Normal',
  ): Promise<void> {
    const before = currentPhase(this.m);
    const status = transition(this.m.status, phase, {
      ...input,
      now: new Date(this.now()),
      ...(this.m.metadata.generation !== undefined ? { generation: this.m.metadata.generation } : {}),
    });
    this.m.status = status;
    await this.deps.writeStatus(this.m, status);
    if (before !== phase) {
      this.event(type, phase, `${before} -> ${phase}: ${input.message}`);
      if (this.ps) migrationMetrics(this.deps.registry).setPhase(this.m.spec.poolRef.name, this.m.metadata.name ?? '', phase);
      this.log.info(
        { migration: this.m.metadata.name, namespace: this.namespace, from: before, to: phase, reason: input.reason },
        'migration phase',
      );
    }
  }

  /** Writes progress, at most every 500 ms (the last batch is written by the phase change). */
  async progressWrite(): Promise<void> {
    const now = this.now();
    if (now - this.lastProgressWrite < 500 || !this.progress) return;
    this.lastProgressWrite = now;
    const status = { ...(this.m.status ?? {}), progress: this.progress };
    this.m.status = status;
    await this.deps.writeStatus(this.m, status).catch((error: unknown) => this.log.debug({ err: String(error) }, 'progress not written'));
  }
}
