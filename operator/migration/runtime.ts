// What every part of the executor shares (executor.ts drives, batch.ts moves a batch forward,
// rollback.ts undoes or stops): the store, the journal, the owner operations, metrics and logger,
// and the helpers every step takes (retries, crash points, timings, phase and result reports).
import type { SessionStore } from '../store/types.ts';
import { RedisSessionStore } from '../store/session-store.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { backoffDelay } from '../kube/clock.ts';
import { migrationMetrics, type MigrationMetrics } from './metrics.ts';
import type { Journal, MigrationPhase } from './journal.ts';
import { BulkOwnerOps } from './bulk-owners.ts';
import { storeOwnerOps, type OwnerOps } from './owner-ops.ts';
import {
  DEFAULTS,
  MigrationFailure,
  MigrationInterruptedError,
  progressOf,
  type ExecutorOptions,
  type MigrationResult,
  type MigrationStep,
  type RunContext,
  type TerminalPhase,
} from './executor-types.ts';

const sleepReal = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The owner operations for a store: batched per master for a RedisSessionStore, else its own batch calls. */
export function ownerOpsFor(store: SessionStore, readConcurrency: number, timings?: Map<string, number>): OwnerOps {
  return store instanceof RedisSessionStore ? new BulkOwnerOps(store, timings) : storeOwnerOps(store, readConcurrency);
}

export class ExecutorRuntime {
  readonly store: SessionStore;
  readonly journal: Journal;
  readonly owners: OwnerOps;
  readonly metrics: MigrationMetrics;
  readonly log: Logger;
  readonly options: ExecutorOptions;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;

  constructor(options: ExecutorOptions) {
    this.options = options;
    this.store = options.store;
    this.journal = options.journal;
    this.owners = options.ownerOps ?? ownerOpsFor(options.store, options.readConcurrency ?? DEFAULTS.readConcurrency, options.timings);
    this.metrics = migrationMetrics(options.registry);
    this.log = options.logger ?? createLogger('migration');
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleepReal;
  }

  /** A store or journal call with retries (storeRetries, exponential from retryDelayMs), timed under `part`. */
  async retry<T>(uid: string, what: string, call: () => Promise<T>, part?: string): Promise<T> {
    const retries = this.options.storeRetries ?? DEFAULTS.storeRetries;
    const delay = this.options.retryDelayMs ?? DEFAULTS.retryDelayMs;
    const started = part && this.options.timings ? performance.now() : 0;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await call();
        } catch (error) {
          if (error instanceof MigrationFailure || error instanceof MigrationInterruptedError) throw error;
          if (attempt >= retries)
            throw new MigrationFailure('StoreError', `${what}: ${error instanceof Error ? error.message : String(error)}`, {
              cause: error,
            });
          this.log.debug(
            { migration: uid, what, attempt, err: error instanceof Error ? error.message : String(error) },
            'store call failed, retrying',
          );
          await this.sleep(backoffDelay(attempt + 1, { baseMs: delay, maxMs: Number.MAX_SAFE_INTEGER, jitter: 0 }));
        }
      }
    } finally {
      if (part && this.options.timings) this.addTime(part, performance.now() - started);
    }
  }

  addTime(part: string, ms: number): void {
    const timings = this.options.timings;
    if (timings) timings.set(part, (timings.get(part) ?? 0) + ms);
  }

  async step(ctx: RunContext, step: MigrationStep, index: number): Promise<void> {
    if (this.options.afterStep) await this.options.afterStep(step, index);
    this.checkAborted(ctx.uid);
  }

  checkAborted(uid: string): void {
    if (this.options.signal?.aborted) throw new MigrationInterruptedError(uid);
  }

  /** Every target still needed must be registered and not draining. */
  async checkTargets(ctx: RunContext, needed: Set<string>): Promise<void> {
    if (needed.size === 0) return;
    const workers = await this.retry(ctx.uid, 'list workers', () => this.store.listWorkers(ctx.pool), 'checks');
    const ready = new Set(workers.filter((w) => !w.draining).map((w) => w.worker));
    const gone = [...needed].filter((t) => !ready.has(t));
    if (gone.length > 0) throw new MigrationFailure('TargetGone', `target worker(s) ${gone.join(', ')} no longer registered or draining`);
  }

  /** Waits out the grace from `since` (the batch's freeze), bounded by the deadline unless ignored. */
  async grace(ctx: RunContext, since: number, ignoreDeadline = false): Promise<void> {
    const graceMs = this.options.graceMs ?? DEFAULTS.graceMs;
    const left = graceMs - (this.now() - since);
    const wait = ignoreDeadline ? left : Math.min(left, ctx.deadlineAt - this.now());
    if (wait > 0) {
      const started = performance.now();
      await this.sleep(wait);
      this.addTime('grace', performance.now() - started);
    }
  }

  async progress(ctx: RunContext): Promise<void> {
    if (this.options.onProgress) await this.options.onProgress(ctx.uid, progressOf(ctx));
  }

  async phase(ctx: RunContext, phase: MigrationPhase, reason: string): Promise<void> {
    this.metrics.setPhase(ctx.pool, ctx.uid, phase);
    if (this.options.onPhase) await this.options.onPhase(ctx.uid, phase, reason);
  }

  result(ctx: RunContext, phase: TerminalPhase, reason: string, message: string): MigrationResult {
    return {
      uid: ctx.uid,
      pool: ctx.pool,
      kind: ctx.kind,
      phase,
      reason,
      message,
      dryRun: false,
      summary: ctx.summary,
      progress: progressOf(ctx),
      startedAt: ctx.startedAt,
      endedAt: this.now(),
    };
  }

  finish(ctx: RunContext, phase: TerminalPhase, reason: string, message: string): MigrationResult {
    const result = this.result(ctx, phase, reason, message);
    this.metrics.duration.observe({ type: ctx.kind, result: phase }, (result.endedAt - result.startedAt) / 1000);
    this.log.info({ migration: ctx.uid, pool: ctx.pool, phase, reason, ...result.progress }, 'migration ended');
    return result;
  }
}
