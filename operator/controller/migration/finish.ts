// The ending steps of a SessionMigration: finish (an Evacuate checks its sources are empty, then
// evicts their pods unless spec.evacuate.keepSourcePods), removePods (one eviction pass per step, requeued while a disruption budget refuses, until the deadline), succeed, fail
// (sources take work again) and the force-drain release.
import type { MigrationPhase } from '../../api/index.ts';
import { migrationMetrics } from '../../migration/metrics.ts';
import { PlanError } from '../../migration/planner.ts';
import type { Logger } from '../../observability/logger.ts';
import { splitPoolWorkers } from '../shared/worker-pods.ts';
import type { StepContext } from './context.ts';
import { evictOnce, evictPods } from './eviction.ts';
import { CONDITION_PODS_EVICTED, REASONS, currentPhase } from './phases.ts';
import { ResolveError } from './resolve.ts';
import { CONDITION_FORCED, FORCE_DRAIN_ANNOTATION, isForced, type RunnerDeps } from './runner-deps.ts';
import { ensureDraining, evacuationSources, markDraining } from './sources.ts';
import { leftOnSources } from '../../migration/source-sessions.ts';
import { REMOVING_PODS, forceReleaseDone, podRemoval } from './steps.ts';

/** Requeue at once: the next step follows from the status just written. */
export const AGAIN = { requeueAfterMs: 1 } as const;
export interface StepResult {
  requeueAfterMs?: number;
}

function notPoolPodsNote(pods: readonly string[], pool: string): string {
  return `not evicted, not workers of pool ${pool}: ${pods.join(', ')}`;
}

export class Finisher {
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(deps: RunnerDeps, log: Logger, now: () => number) {
    this.deps = deps;
    this.log = log;
    this.now = now;
  }

  /**
   * Every round done: an Evacuate's sources must be empty; their pods go next (unless kept); else Succeeded.
   * `again` plans another round, while rounds remain: a source told to drain after a round may still claim
   * sessions until its next heartbeat reads the mark (up to heartbeatSeconds, 5 s), e.g. sessions that
   * another source being evicted released; another round moves those instead of failing the evacuation.
   */
  async finish(ctx: StepContext, again?: () => Promise<StepResult>): Promise<StepResult> {
    const m = ctx.m;
    if (m.spec.type === 'Evacuate') {
      const ps = ctx.pool;
      const sources = evacuationSources(m, this.deps.listPods(ctx.namespace));
      await ensureDraining(ps.store, ps.pool, sources, this.log);
      const left = await leftOnSources(ps.store, ps.pool, sources);
      if (left > 0) {
        if (again) {
          this.log.info({ left, sources }, 'sessions claimed on the sources after the round: another round');
          return again();
        }
        await this.fail(ctx, undefined, { reason: REASONS.SessionsLeft, message: `${left} sessions still on ${sources.join(', ')}` });
        return {};
      }
      const removal = podRemoval(m.spec);
      if (removal !== 'keep') {
        ctx.condition(
          CONDITION_PODS_EVICTED,
          'Unknown',
          REMOVING_PODS,
          `sessions moved off ${sources.join(', ')}; removing the pods (${removal})`,
        );
        await ctx.flush();
        return AGAIN;
      }
    }
    await this.succeed(ctx);
    return {};
  }

  private async succeed(ctx: StepContext): Promise<void> {
    const progress = ctx.m.status?.progress ?? { moved: 0, remaining: 0, failed: 0 };
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

  /**
   * One eviction pass over the emptied source pods (their Deployment replaces them); requeued
   * while a disruption budget refuses, Failed past the deadline.
   */
  async removePods(ctx: StepContext): Promise<StepResult> {
    const m = ctx.m;
    const pods = this.deps.listPods(ctx.namespace);
    const sources = evacuationSources(m, pods);
    // Only the pool's own workers are evicted, never another workload's pod a spec names.
    const { workers, refused } = splitPoolWorkers(sources, pods, m.spec.poolRef.name);
    const terminating = new Set(pods.filter((p) => p.metadata?.deletionTimestamp).map((p) => p.metadata?.name ?? ''));
    const blocked: { pod: string; reason: string }[] = [];
    for (const pod of workers) {
      if (terminating.has(pod)) continue;
      const outcome = await evictOnce(this.deps.eviction, ctx.namespace, pod);
      if (!outcome.ok) blocked.push({ pod, reason: outcome.code === 429 ? `disruption budget: ${outcome.reason}` : outcome.reason });
    }
    const waitMs = this.deps.waitMs ?? 1000;
    if (blocked.length > 0 && ctx.remaining() > waitMs) return { requeueAfterMs: waitMs };
    if (refused.length > 0) ctx.event('Warning', REASONS.NotPoolPods, notPoolPodsNote(refused, m.spec.poolRef.name));
    if (blocked.length === 0) {
      const note = `evicted ${workers.join(', ') || 'none (already gone)'} after moving their sessions`;
      ctx.condition(CONDITION_PODS_EVICTED, 'True', REASONS.PodsEvicted, note);
      ctx.event('Normal', REASONS.PodsEvicted, note);
      await this.succeed(ctx);
      return {};
    }
    const what = blocked.map((b) => `${b.pod} (${b.reason})`).join(', ');
    ctx.condition(CONDITION_PODS_EVICTED, 'False', REASONS.EvictionBlocked, `not evicted by the deadline: ${what}`);
    await ctx.to(
      'Failed',
      {
        reason: REASONS.EvictionBlocked,
        message: `sessions moved, but pods not evicted by the deadline: ${what}. Annotate ${FORCE_DRAIN_ANNOTATION}="true" or delete them`,
        progress: { ...(m.status?.progress ?? { moved: 0, failed: 0 }), remaining: 0 },
      },
      'Warning',
    );
    return {};
  }

  /** Terminal failure: status, and sources taking work again (their sessions are back or stayed). */
  async fail(
    ctx: StepContext,
    error: unknown,
    explicit?: { reason: string; message: string; phase?: MigrationPhase; fromRound?: boolean },
  ): Promise<void> {
    let reason: string;
    let message: string;
    let phase: MigrationPhase = explicit?.phase ?? 'Failed';
    if (explicit) ({ reason, message } = explicit);
    else if (error instanceof ResolveError) {
      reason = error.reason;
      message = error.message;
    } else if (error instanceof PlanError) {
      reason = error.code === 'NoTargets' || error.code === 'UnknownTarget' ? REASONS.NoTargets : REASONS.InvalidSpec;
      message = error.message;
    } else {
      reason = error instanceof Error && error.message.includes('deadline') ? REASONS.DeadlineExceeded : REASONS.StoreUnreachable;
      message = error instanceof Error ? error.message : String(error);
    }
    if (phase !== 'Failed' && currentPhase(ctx.m) !== 'Running') phase = 'Failed';
    if (ctx.ps && ctx.m.spec.type === 'Evacuate' && !isForced(ctx.m)) {
      const sources = evacuationSources(ctx.m, this.deps.listPods(ctx.namespace));
      await markDraining(ctx.ps.store, ctx.ps.pool, sources, false, this.log).catch(() => undefined);
    }
    // A round's failure was counted by the executor already.
    if (!explicit?.fromRound)
      migrationMetrics(this.deps.registry).failures.inc({ pool: ctx.m.spec.poolRef.name, type: ctx.m.spec.type, reason });
    await ctx.to(phase, { reason, message }, 'Warning');
    if (isForced(ctx.m) && ctx.m.spec.type === 'Evacuate') await this.forceRelease(ctx);
  }

  /**
   * dspex.io/force-drain: the sessions left on the sources are released to the store unowned
   * (safe in Centralized mode: the data is in Redis and any worker claims it on the next
   * request), then the source pods are evicted. Done once (condition ForcedRelease).
   */
  async forceRelease(ctx: StepContext): Promise<void> {
    if (forceReleaseDone(ctx.m)) return;
    const ps = ctx.pool;
    const sources = evacuationSources(ctx.m, this.deps.listPods(ctx.namespace));
    await markDraining(ps.store, ps.pool, sources, true, this.log);
    let released = 0;
    for (const source of sources) {
      const ids = await ps.store.listByOwner(ps.pool, source);
      for (let i = 0; i < ids.length; i += 500) {
        const records = await Promise.all(ids.slice(i, i + 500).map((id) => ps.store.get(id, { pool: ps.pool, touch: false })));
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
}
