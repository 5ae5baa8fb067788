// The migration executor: runs a plan batch by batch with fenced owner swaps, journaling each
// step in Redis so that an operator restart can resume (finish or undo) what it was doing.
//
// One batch, forward (batch.ts; three Redis operations per session: a read, a mark, a move, each
// batched per master for a RedisSessionStore: bulk-owners.ts):
//   1. read each session's owner and epoch; journal the batch `planned`
//   1b. with a handover transport (handover.ts): each source worker hands its live activations
//      over itself (POST /admin/handover); the sessions it moved or released get their result
//      here and skip steps 2 to 5; what it could not hand over goes on below
//   2. mark the sessions moving: workers start no new work on them; journal `frozen`
//   3. wait a short grace so in-flight work ends (late writes are fenced anyway)
//   4. a compare-and-swap on (owner, epoch) for each session that also clears its moving mark;
//      owner indexes are updated per owner, not per session. A conflict is re-read and retried
//      once if the session is still on its source; missing = expired
//   5. clear the marks still set (those not moved in step 4: usually none)
//   6. journal `moved` with each session's outcome and new epoch (counters move only here)
// Batches are pipelined (pipelineDepth, default 2): batch i+1 is read, journaled and frozen while
// batch i waits out its grace and swaps; the swaps and the `moved` entries stay in batch order, and
// the targets are checked again right before each batch's swaps.
// On failure (a target gone from the worker registry, a store error after retries, the
// deadline) the executor waits for the batches in flight, then either rolls back (rollback.ts) and
// ends `RolledBack`, or stops and ends `Failed` keeping what moved. See docs/migration.md for what
// a crash at each step leaves.
import { TERMINAL_PHASES, type BatchEntry } from './journal.ts';
import { toBatches, type Batch } from './planner.ts';
import { classify, finishBatch, planBatch, prepareBatch, type PreparedBatch } from './batch.ts';
import { fail, rollback } from './rollback.ts';
import { ExecutorRuntime } from './runtime.ts';
import {
  DEFAULTS,
  MigrationFailure,
  MigrationInterruptedError,
  progressOf,
  remainingOf,
  type AdvanceResult,
  type ExecutorOptions,
  type MigrationResult,
  type MigrationSpec,
  type RunContext,
  type TerminalPhase,
} from './executor-types.ts';

export * from './executor-types.ts';

export class MigrationExecutor {
  private readonly rt: ExecutorRuntime;
  private readonly options: ExecutorOptions;

  constructor(options: ExecutorOptions) {
    this.options = options;
    this.rt = new ExecutorRuntime(options);
  }

  /** Runs a migration. If its journal exists already (a second call), resumes it instead. */
  async run(spec: MigrationSpec): Promise<MigrationResult> {
    const startedAt = this.rt.now();
    const batchSize = spec.batchSize ?? this.options.batchSize ?? DEFAULTS.batchSize;
    const batches = toBatches(spec.plan.moves, batchSize);
    if (spec.dryRun) {
      const total = spec.plan.summary.totalSessions;
      return {
        uid: spec.uid,
        pool: spec.pool,
        kind: spec.plan.kind,
        phase: 'Succeeded',
        reason: '',
        message: `dry run: ${total} sessions would move in ${batches.length} batches`,
        dryRun: true,
        summary: spec.plan.summary,
        progress: {
          moved: 0,
          released: 0,
          remaining: total,
          failed: 0,
          expired: 0,
          rolledBack: 0,
          batchesDone: 0,
          batchCount: batches.length,
        },
        startedAt,
        endedAt: this.rt.now(),
      };
    }
    const deadlineAt = startedAt + (spec.deadlineMs ?? this.options.deadlineMs ?? DEFAULTS.deadlineMs);
    const onFailure = spec.onFailure ?? 'Rollback';
    if (!(await this.createJournal(spec, batches, deadlineAt))) return this.resume(spec.uid);
    this.rt.log.info(
      { migration: spec.uid, pool: spec.pool, kind: spec.plan.kind, sessions: spec.plan.summary.totalSessions, batches: batches.length },
      'migration started',
    );
    const ctx: RunContext = {
      uid: spec.uid,
      pool: spec.pool,
      kind: spec.plan.kind,
      onFailure,
      summary: spec.plan.summary,
      batches,
      deadlineAt,
      startedAt,
      counters: { moved: 0, released: 0, failed: 0, expired: 0, rolledBack: 0 },
      batchesDone: 0,
    };
    await this.rt.phase(ctx, 'Running', '');
    return this.complete(await this.drive(ctx, new Map(), Infinity));
  }

  /**
   * Writes the journal of a migration (header and plan) without moving anything: the first half
   * of a run, for a caller that then moves it a bounded step at a time with advance(). Returns
   * whether it was created (false: it existed, nothing changed).
   */
  async start(spec: Omit<MigrationSpec, 'dryRun'>): Promise<boolean> {
    const batches = toBatches(spec.plan.moves, spec.batchSize ?? this.options.batchSize ?? DEFAULTS.batchSize);
    return this.createJournal(spec, batches, this.rt.now() + (spec.deadlineMs ?? this.options.deadlineMs ?? DEFAULTS.deadlineMs));
  }

  /**
   * The journal's plan, then its header; false (nothing written) when it existed already. In this
   * order a journal (its header) exists only with its whole plan: an operator killed while writing it
   * leaves no header, so its successor plans the round again (nothing has moved) instead of finding
   * an incomplete plan it could neither run nor roll back.
   */
  private async createJournal(spec: Omit<MigrationSpec, 'dryRun'>, batches: Batch[], deadlineAt: number): Promise<boolean> {
    if (await this.rt.retry(spec.uid, 'read journal', () => this.rt.journal.header(spec.uid))) return false;
    await this.rt.retry(spec.uid, 'save plan', () => this.rt.journal.savePlan(spec.uid, batches), 'journal');
    return this.rt.retry(
      spec.uid,
      'create journal',
      () =>
        this.rt.journal.create({
          uid: spec.uid,
          pool: spec.pool,
          kind: spec.plan.kind,
          onFailure: spec.onFailure ?? 'Rollback',
          summary: spec.plan.summary,
          batchCount: batches.length,
          deadlineAt,
        }),
      'journal',
    );
  }

  /** Continues a migration from its journal after a restart: finishes it, or finishes its rollback. */
  async resume(uid: string): Promise<MigrationResult> {
    return this.complete(await this.advance(uid, Infinity));
  }

  /**
   * One bounded step of a journaled migration: batches until `budgetMs` has passed (at least one
   * batch), then pauses between two batches; or its end (success, rollback, stop). A batch is
   * never left half done by the budget, so the journal shows only whole batches between steps.
   */
  async advance(uid: string, budgetMs: number): Promise<AdvanceResult> {
    const until = this.rt.now() + budgetMs;
    const header = await this.rt.retry(uid, 'read journal', () => this.rt.journal.header(uid));
    if (!header) throw new Error(`no migration journal for ${uid}`);
    const cached = this.options.planCache?.get(uid);
    const batches = cached ?? (await this.rt.retry(uid, 'read plan', () => this.rt.journal.plan(uid)));
    if (!cached && batches.length === header.batchCount) this.options.planCache?.set(uid, batches);
    const ctx: RunContext = {
      uid,
      pool: header.pool,
      kind: header.kind,
      onFailure: header.onFailure,
      summary: header.summary,
      batches,
      deadlineAt: header.deadlineAt,
      startedAt: header.createdAt,
      counters: {
        moved: header.moved,
        released: header.released,
        failed: header.failed,
        expired: header.expired,
        rolledBack: header.rolledBack,
      },
      batchesDone: 0,
    };
    if (TERMINAL_PHASES.includes(header.phase))
      return { done: true, result: this.rt.result(ctx, header.phase as TerminalPhase, header.reason, header.reason) };
    this.rt.log.debug(
      { migration: uid, pool: header.pool, rollingBack: header.rollbackReason !== '' },
      'migration continued from its journal',
    );
    const entries = new Map((await this.rt.retry(uid, 'read batches', () => this.rt.journal.batches(uid))).map((e) => [e.index, e]));
    ctx.batchesDone = [...entries.values()].filter((e) => e.state === 'moved' || e.state === 'rolledback').length;
    if (header.rollbackReason) return { done: true, result: await rollback(this.rt, ctx, header.rollbackReason, header.rollbackReason) };
    if (header.batchCount > batches.length) {
      // The plan was not fully saved before the crash: nothing moved beyond what the journal has.
      return { done: true, result: await fail(this.rt, ctx, new MigrationFailure('StoreError', 'the journal holds an incomplete plan')) };
    }
    return this.drive(ctx, entries, until);
  }

  private complete(step: AdvanceResult): MigrationResult {
    if (!step.done) throw new Error('a migration driven without a budget paused');
    return step.result;
  }

  // --- forward --------------------------------------------------------------------------------

  private async drive(ctx: RunContext, entries: Map<number, BatchEntry>, until: number): Promise<AdvanceResult> {
    const rt = this.rt;
    // Targets still needed from batch i on, to notice a target gone before moving more to it.
    const targetsFrom: Set<string>[] = [];
    for (let i = ctx.batches.length - 1, acc = new Set<string>(); i >= 0; i--) {
      for (const move of ctx.batches[i]!.moves) acc.add(move.to);
      targetsFrom[i] = new Set(acc);
    }
    const depth = Math.max(1, this.options.pipelineDepth ?? DEFAULTS.pipelineDepth);
    const inflight: Promise<void>[] = [];
    // The batch before, so that swaps and `moved` entries keep batch order.
    let previous: Promise<void> = Promise.resolve();
    const drain = async (): Promise<void> => {
      const settled = await Promise.allSettled(inflight.splice(0));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    };
    let ran = 0;
    try {
      for (const batch of ctx.batches) {
        const entry = entries.get(batch.index);
        if (entry && (entry.state === 'moved' || entry.state === 'rolledback')) continue;
        if (inflight.length >= depth) await inflight.shift();
        if (ran > 0 && rt.now() >= until) {
          await drain();
          return { done: false, progress: progressOf(ctx) };
        }
        rt.checkAborted(ctx.uid);
        if (rt.now() >= ctx.deadlineAt)
          throw new MigrationFailure('DeadlineExceeded', `deadline passed with ${remainingOf(ctx)} sessions left`);
        const targets = targetsFrom[batch.index] ?? new Set<string>();
        await rt.checkTargets(ctx, targets);
        const before = previous;
        const work = (async () => {
          const prepared = await this.prepare(ctx, batch, entry);
          await before;
          await finishBatch(rt, ctx, prepared, targets);
          ctx.batchesDone += 1;
          await rt.progress(ctx);
        })();
        work.catch(() => undefined); // handled through `inflight`
        inflight.push(work);
        previous = work;
        ran += 1;
      }
      await drain();
    } catch (error) {
      await Promise.allSettled(inflight.splice(0));
      if (error instanceof MigrationInterruptedError) throw error;
      return { done: true, result: await fail(rt, ctx, error) };
    }
    await rt.retry(ctx.uid, 'set phase', () => rt.journal.setPhase(ctx.uid, 'Succeeded', ''), 'journal');
    await rt.phase(ctx, 'Succeeded', '');
    return { done: true, result: rt.finish(ctx, 'Succeeded', '', `${ctx.counters.moved} sessions moved`) };
  }

  /** Steps 1 to 2 of a batch: a new one from the plan, or one journaled before a restart. */
  private async prepare(ctx: RunContext, batch: Batch, entry: BatchEntry | undefined): Promise<PreparedBatch> {
    if (!entry) return prepareBatch(this.rt, ctx, await planBatch(this.rt, ctx, batch), { frozen: false, journaled: true });
    const marked = entry.sessions.filter((x) => x.result === undefined).map((x) => x.id);
    return prepareBatch(this.rt, ctx, await classify(this.rt, ctx, entry), { frozen: entry.state === 'frozen', journaled: false, marked });
  }
}
