// Carries out one step of a SessionMigration per reconcile (steps.ts decides which, from the
// status and the round's journal): start, plan a round, advance its batches for one time slice,
// decide after a round, remove the emptied pods, end. Each step writes status and says when to
// come back, so a migration lives in the work queue like any object, and a restarted operator
// (or a new leader) continues from status + journal. The run is bounded by
// spec.deadlineSeconds from status.startTime.
import type { SessionMigration, SessionPool } from '../../api/index.ts';
import {
  MigrationExecutor,
  MigrationIncompleteError,
  MigrationInterruptedError,
  type MigrationProgress as EngineProgress,
} from '../../migration/executor.ts';
import type { JournalHeader } from '../../migration/journal.ts';
import { PlanError, type Batch } from '../../migration/planner.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { StepContext } from './context.ts';
import { AGAIN, Finisher, type StepResult } from './finish.ts';
import { REASONS, apiPlan, currentPhase, journalHeaderKey, roundUid } from './phases.ts';
import { buildPlan } from './plan.ts';
import { ResolveError } from './resolve.ts';
import { isForced, type RunnerDeps } from './runner-deps.ts';
import { evacuationSources, markDraining } from './sources.ts';
import { leftOnSources } from '../../migration/source-sessions.ts';
import { MAX_ROUNDS, afterRound, currentRound, earlierRounds, nextStepOf } from './steps.ts';

export { CONDITION_FORCED, FORCE_DRAIN_ANNOTATION, isForced, type RunnerDeps } from './runner-deps.ts';
export { MAX_ROUNDS } from './steps.ts';
export type { StepResult } from './finish.ts';

export class MigrationRunner {
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly finisher: Finisher;
  /** Migrations whose wait for a target was announced (one Event per wait, per process). */
  private readonly waitNoted = new Set<string>();
  /** Journals this process started or announced as resumed (one Resumed Event each). */
  private readonly known = new Set<string>();
  /** The saved plans of the rounds running here (immutable): a slice does not read them back. */
  private readonly plans = new Map<string, Batch[]>();

  constructor(deps: RunnerDeps) {
    this.deps = deps;
    this.log = deps.logger ?? createLogger('migration-controller');
    this.now = deps.now ?? Date.now;
    this.finisher = new Finisher(deps, this.log, this.now);
  }

  /** Forgets what this process remembered of a migration (deleted). */
  forget(uid: string): void {
    this.waitNoted.delete(uid);
    for (const juid of this.known) if (juid === uid || juid.startsWith(`${uid}-r`)) this.known.delete(juid);
    for (const juid of this.plans.keys()) if (juid === uid || juid.startsWith(`${uid}-r`)) this.plans.delete(juid);
  }

  /**
   * One step. Returns when to come back (nothing: the migration needs nothing more). Throws only
   * for errors worth a retry with backoff (store unreachable before the deadline).
   */
  async step(input: SessionMigration, signal: AbortSignal): Promise<StepResult> {
    const m = structuredClone(input);
    const ctx = new StepContext(this.deps, m, this.log, this.now);
    const forced = isForced(m);
    let step = nextStepOf(m, forced);
    if (step.kind === 'done') return {};
    const pool = await this.deps.getPool(ctx.namespace, m.spec.poolRef.name);
    if (step.kind === 'forceRelease') {
      if (!pool) return {};
      ctx.ps = await this.deps.storeFor(pool);
      await this.finisher.forceRelease(ctx);
      return {};
    }
    if (!pool) {
      const message = `SessionPool ${m.spec.poolRef.name} not found in ${ctx.namespace}`;
      await ctx.to('Failed', { reason: REASONS.PoolNotFound, message }, 'Warning');
      return {};
    }
    try {
      ctx.ps = await this.deps.storeFor(pool);
    } catch (error) {
      if (ctx.remaining() > 0) throw error;
      const message = `session store of pool ${pool.metadata.name}: ${String(error)}`;
      await ctx.to('Failed', { reason: REASONS.StoreUnreachable, message }, 'Warning');
      return {};
    }
    try {
      let header: JournalHeader | null = null;
      const round = currentRound(m);
      if (currentPhase(m) === 'Running' && round) {
        header = await ctx.pool.journal.header(round.journalUid);
        step = nextStepOf(m, forced, header ?? 'absent');
      }
      switch (step.kind) {
        case 'start':
          await ctx.to('Planning', { reason: REASONS.Planning, message: `planning a ${m.spec.type}${m.spec.dryRun ? ' (dry run)' : ''}` });
          return AGAIN;
        case 'plan':
          return await this.plan(ctx, step.round);
        case 'advance':
          return await this.advance(ctx, pool, step.round, step.journalUid, signal);
        case 'afterRound':
          return await this.afterRound(ctx, step.round, header!);
        case 'removePods':
          return await this.finisher.removePods(ctx);
        default:
          return {};
      }
    } catch (error) {
      if (error instanceof MigrationInterruptedError) return {};
      if (error instanceof MigrationIncompleteError) throw error;
      if (ctx.remaining() > 0 && !(error instanceof ResolveError) && !(error instanceof PlanError)) throw error;
      await this.finisher.fail(ctx, error);
      return {};
    }
  }

  /**
   * Plans round `round` and writes it: status Running naming the round's journal first, then the
   * journal (so a crash between the two re-plans that round: nothing has moved). An Evacuate
   * with no target yet (a replacement pod starting) waits, requeued, until the deadline.
   */
  private async plan(ctx: StepContext, round: number): Promise<StepResult> {
    const m = ctx.m;
    const ps = ctx.pool;
    const pods = this.deps.listPods(ctx.namespace);
    const sources = m.spec.type === 'Evacuate' && round > 0 ? evacuationSources(m, pods) : undefined;
    let built;
    try {
      built = await buildPlan({
        migration: m,
        pool: ps.pool,
        store: ps.store,
        pods,
        drainingNodes: this.deps.drainingNodes(),
        ...(sources ? { sources } : {}),
      });
    } catch (error) {
      const waitMs = this.deps.waitMs ?? 1000;
      const waitable = error instanceof ResolveError && error.reason === 'NoTargets' && m.spec.type === 'Evacuate';
      if (!waitable || ctx.remaining() <= waitMs || isForced(m)) throw error;
      if (!this.waitNoted.has(ctx.uid)) {
        this.waitNoted.add(ctx.uid);
        ctx.event('Warning', REASONS.NoTargets, `${error.message}; waiting up to the deadline`);
      }
      return { requeueAfterMs: waitMs };
    }
    const total = built.plan.summary.totalSessions;
    if (round === 0 && m.spec.dryRun) {
      const from = built.sources.length ? ` from ${built.sources.join(', ')}` : '';
      await ctx.to(
        'Succeeded',
        {
          reason: REASONS.DryRun,
          message: `dry run: ${total} sessions would move${from}; nothing moved`,
          plan: apiPlan(built.plan.summary),
          progress: { moved: 0, remaining: total, failed: 0 },
        },
        'Normal',
      );
      return {};
    }
    if (round > 0 && total === 0) return this.finish(ctx, round);
    const juid = roundUid(ctx.uid, round);
    const totals = await this.priorTotals(ctx, round);
    await ctx.to('Running', {
      reason: REASONS.Running,
      message: round === 0 ? `moving ${total} sessions in batches of ${m.spec.batchSize}` : `round ${round}: moving ${total} sessions`,
      journalKey: journalHeaderKey(ps.keyPrefix, ps.pool, juid),
      ...(round === 0 ? { plan: apiPlan(built.plan.summary) } : {}),
      progress: { moved: totals.moved, remaining: total, failed: totals.failed },
    });
    if (total === 0) return this.finish(ctx, round);
    await this.executor(ctx).start({
      uid: juid,
      pool: ps.pool,
      plan: built.plan,
      batchSize: m.spec.batchSize,
      onFailure: m.spec.onFailure,
      deadlineMs: Math.max(1, ctx.remaining()),
    });
    this.known.add(juid);
    return AGAIN;
  }

  /** Moves the round's batches for one time slice (whole batches), writes progress, comes back. */
  private async advance(ctx: StepContext, pool: SessionPool, round: number, juid: string, signal: AbortSignal): Promise<StepResult> {
    if (!this.known.has(juid)) {
      this.known.add(juid);
      const key = journalHeaderKey(ctx.pool.keyPrefix, ctx.pool.pool, juid);
      ctx.event('Normal', REASONS.Resumed, `resuming round ${round} from journal ${key}`);
    }
    const totals = await this.priorTotals(ctx, round);
    const outcome = await this.executor(ctx, pool, signal).advance(juid, this.deps.stepBudgetMs ?? 1000);
    const p: EngineProgress = outcome.done ? outcome.result.progress : outcome.progress;
    await ctx.to('Running', {
      reason: ctx.m.status?.reason ?? REASONS.Running,
      message: ctx.m.status?.message ?? REASONS.Running,
      progress: { moved: totals.moved + p.moved - p.rolledBack, remaining: p.remaining, failed: totals.failed + p.failed },
    });
    return AGAIN;
  }

  /** The finish after `round`, which may plan one more round while rounds remain (Finisher.finish). */
  private finish(ctx: StepContext, round: number): Promise<StepResult> {
    return this.finisher.finish(ctx, round + 1 < MAX_ROUNDS ? () => this.plan(ctx, round + 1) : undefined);
  }

  /** The round's journal ended: another round, the finish, or the end of the migration. */
  private async afterRound(ctx: StepContext, round: number, header: JournalHeader): Promise<StepResult> {
    const m = ctx.m;
    this.plans.delete(roundUid(ctx.uid, round));
    const ps = ctx.pool;
    let left: number | undefined;
    if (m.spec.type === 'Evacuate' && header.phase === 'Succeeded') {
      // Sources are told to drain only once a round moved their sessions: a worker told earlier
      // releases its leases while the fenced moves run, and its sessions end unowned, not moved.
      const sources = evacuationSources(m, this.deps.listPods(ctx.namespace));
      await markDraining(ps.store, ps.pool, sources, true, this.log);
      left = await leftOnSources(ps.store, ps.pool, sources);
    }
    const next = afterRound({ type: m.spec.type, round, header, ...(left !== undefined ? { left } : {}), remainingMs: ctx.remaining() });
    switch (next.kind) {
      case 'finish':
        return this.finish(ctx, round);
      case 'nextRound':
        if (header.phase !== 'Succeeded')
          ctx.event('Warning', 'Replanning', `round ${round} ended ${header.phase} (${header.reason}); re-planning onto the workers left`);
        return this.plan(ctx, next.round);
      case 'sessionsLeft':
        await this.finisher.fail(ctx, undefined, {
          reason: REASONS.SessionsLeft,
          message: `${next.left} sessions still on the sources after ${round + 1} rounds`,
        });
        return {};
      case 'fail':
        await this.finisher.fail(ctx, undefined, {
          phase: next.phase,
          reason: next.reason,
          message: `round ${round} ended ${header.phase}: ${next.reason}${next.phase === 'RolledBack' ? ' (moved sessions returned to their previous owners)' : ''}`,
          fromRound: true,
        });
        return {};
    }
  }

  private executor(ctx: StepContext, pool?: SessionPool, signal?: AbortSignal): MigrationExecutor {
    const ps = ctx.pool;
    return new MigrationExecutor({
      store: ps.store,
      journal: ps.journal,
      ...(this.deps.registry ? { registry: this.deps.registry } : {}),
      logger: this.log.child({ migration: ctx.m.metadata.name, namespace: ctx.namespace }),
      graceMs: this.deps.graceMs ?? 100,
      // 100 ms doubling, 7 retries: about 12 s, longer than a Redis Cluster failover.
      storeRetries: 7,
      retryDelayMs: 100,
      ...(signal ? { signal } : {}),
      planCache: this.plans,
      ...(pool && this.deps.handover ? { handover: { call: this.deps.handover(pool, ps, ctx.m) } } : {}),
      now: this.now,
    });
  }

  /** Moved and failed counts of the rounds before `round`, from their journals. */
  private async priorTotals(ctx: StepContext, round: number): Promise<{ moved: number; failed: number }> {
    const totals = { moved: 0, failed: 0 };
    for (const juid of earlierRounds(ctx.uid, round)) {
      const header = await ctx.pool.journal.header(juid);
      if (header) {
        totals.moved += header.moved - header.rolledBack;
        totals.failed += header.failed;
      }
    }
    return totals;
  }
}
