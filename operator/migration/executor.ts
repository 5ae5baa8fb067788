// The migration executor: runs a plan batch by batch with fenced owner swaps, journaling each
// step in Redis so that an operator restart can resume (finish or undo) what it was doing.
//
// One batch, forward (three Redis commands per session: a read, a mark, a move):
//   1. read each session's owner and epoch (readOwners: one HGET of the header each); journal the batch `planned`
//   1b. with a handover transport (handover.ts): each source worker hands its live activations
//      over itself (POST /admin/handover); the sessions it moved or released get their result
//      here and skip steps 2 to 5; what it could not hand over goes on below
//   2. setMoving(batch, uid): workers start no new work on these sessions; journal `frozen`
//   3. wait a short grace so in-flight work ends (late writes are fenced anyway)
//   4. migrateOwners, a compare-and-swap on (owner, epoch) for each session that also clears its
//      moving mark; owner indexes are updated per owner, not per session. A conflict is re-read
//      and retried once if the session is still on its source; missing = expired
//   5. setMoving(null) for the sessions still marked (those not moved in step 4: usually none)
//   6. journal `moved` with each session's outcome and new epoch (counters move only here)
// With a store that lacks readOwners/migrateOwners (optional in the contract) the executor falls
// back to get, moveOwners and a setMoving(null) pass over the whole batch.
// On failure (a target gone from the worker registry, a store error after retries, the
// deadline) the executor either rolls back (every moved session is moved back with a CAS on its
// new owner and epoch, so its epoch grows again) and ends `RolledBack`, or stops and ends
// `Failed` keeping what moved. See docs/migration.md for what a crash at each step leaves.
import type { SessionStore, OwnerMove, OwnerMoveOutcome, OwnerState } from '../store/types.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { migrationMetrics, type MigrationMetrics } from './metrics.ts';
import {
  TERMINAL_PHASES,
  type BatchEntry,
  type Journal,
  type JournalCounters,
  type JournalSession,
  type MigrationPhase,
} from './journal.ts';
import { toBatches, type Batch } from './planner.ts';
import { handOver } from './handover.ts';
import {
  DEFAULTS,
  MigrationFailure,
  MigrationIncompleteError,
  MigrationInterruptedError,
  addCounters,
  countResults,
  progressOf,
  remainingOf,
  type AdvanceResult,
  type ExecutorOptions,
  type MigrationResult,
  type MigrationSpec,
  type MigrationStep,
  type RunContext,
  type TerminalPhase,
} from './executor-types.ts';

export * from './executor-types.ts';
import { backoffDelay } from '../kube/clock.ts';

const sleepReal = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class MigrationExecutor {
  private readonly store: SessionStore;
  private readonly journal: Journal;
  private readonly metrics: MigrationMetrics;
  private readonly log: Logger;
  private readonly options: ExecutorOptions;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: ExecutorOptions) {
    this.options = options;
    this.store = options.store;
    this.journal = options.journal;
    this.metrics = migrationMetrics(options.registry);
    this.log = options.logger ?? createLogger('migration');
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleepReal;
  }

  /** Runs a migration. If its journal exists already (a second call), resumes it instead. */
  async run(spec: MigrationSpec): Promise<MigrationResult> {
    const startedAt = this.now();
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
        endedAt: this.now(),
      };
    }
    const deadlineAt = startedAt + (spec.deadlineMs ?? this.options.deadlineMs ?? DEFAULTS.deadlineMs);
    const onFailure = spec.onFailure ?? 'Rollback';
    if (!(await this.createJournal(spec, batches, deadlineAt))) return this.resume(spec.uid);
    this.log.info(
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
    await this.phase(ctx, 'Running', '');
    return this.complete(await this.drive(ctx, new Map(), Infinity));
  }

  /**
   * Writes the journal of a migration (header and plan) without moving anything: the first half
   * of a run, for a caller that then moves it a bounded step at a time with advance(). Returns
   * whether it was created (false: it existed, nothing changed).
   */
  async start(spec: Omit<MigrationSpec, 'dryRun'>): Promise<boolean> {
    const batches = toBatches(spec.plan.moves, spec.batchSize ?? this.options.batchSize ?? DEFAULTS.batchSize);
    return this.createJournal(spec, batches, this.now() + (spec.deadlineMs ?? this.options.deadlineMs ?? DEFAULTS.deadlineMs));
  }

  /**
   * The journal's plan, then its header; false (nothing written) when it existed already. In this
   * order a journal (its header) exists only with its whole plan: an operator killed while writing it
   * leaves no header, so its successor plans the round again (nothing has moved) instead of finding
   * an incomplete plan it could neither run nor roll back.
   */
  private async createJournal(spec: Omit<MigrationSpec, 'dryRun'>, batches: Batch[], deadlineAt: number): Promise<boolean> {
    if (await this.retry(spec.uid, 'read journal', () => this.journal.header(spec.uid))) return false;
    await this.retry(spec.uid, 'save plan', () => this.journal.savePlan(spec.uid, batches));
    return this.retry(spec.uid, 'create journal', () =>
      this.journal.create({
        uid: spec.uid,
        pool: spec.pool,
        kind: spec.plan.kind,
        onFailure: spec.onFailure ?? 'Rollback',
        summary: spec.plan.summary,
        batchCount: batches.length,
        deadlineAt,
      }),
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
    const until = this.now() + budgetMs;
    const header = await this.retry(uid, 'read journal', () => this.journal.header(uid));
    if (!header) throw new Error(`no migration journal for ${uid}`);
    const cached = this.options.planCache?.get(uid);
    const batches = cached ?? (await this.retry(uid, 'read plan', () => this.journal.plan(uid)));
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
      return { done: true, result: this.result(ctx, header.phase as TerminalPhase, header.reason, header.reason) };
    this.log.debug(
      { migration: uid, pool: header.pool, rollingBack: header.rollbackReason !== '' },
      'migration continued from its journal',
    );
    const entries = new Map((await this.retry(uid, 'read batches', () => this.journal.batches(uid))).map((e) => [e.index, e]));
    ctx.batchesDone = [...entries.values()].filter((e) => e.state === 'moved' || e.state === 'rolledback').length;
    if (header.rollbackReason) return { done: true, result: await this.rollback(ctx, header.rollbackReason, header.rollbackReason) };
    if (header.batchCount > batches.length) {
      // The plan was not fully saved before the crash: nothing moved beyond what the journal has.
      return { done: true, result: await this.fail(ctx, new MigrationFailure('StoreError', 'the journal holds an incomplete plan')) };
    }
    return this.drive(ctx, entries, until);
  }

  private complete(step: AdvanceResult): MigrationResult {
    if (!step.done) throw new Error('a migration driven without a budget paused');
    return step.result;
  }

  // --- forward --------------------------------------------------------------------------------

  private async drive(ctx: RunContext, entries: Map<number, BatchEntry>, until: number): Promise<AdvanceResult> {
    // Targets still needed from batch i on, to notice a target gone before moving more to it.
    const targetsFrom: Set<string>[] = [];
    for (let i = ctx.batches.length - 1, acc = new Set<string>(); i >= 0; i--) {
      for (const move of ctx.batches[i]!.moves) acc.add(move.to);
      targetsFrom[i] = new Set(acc);
    }
    let ran = 0;
    try {
      for (const batch of ctx.batches) {
        const entry = entries.get(batch.index);
        if (entry && (entry.state === 'moved' || entry.state === 'rolledback')) continue;
        if (ran > 0 && this.now() >= until) return { done: false, progress: progressOf(ctx) };
        this.checkAborted(ctx.uid);
        if (this.now() >= ctx.deadlineAt)
          throw new MigrationFailure('DeadlineExceeded', `deadline passed with ${remainingOf(ctx)} sessions left`);
        await this.checkTargets(ctx, targetsFrom[batch.index] ?? new Set());
        if (entry) {
          const marked = entry.sessions.filter((x) => x.result === undefined).map((x) => x.id);
          await this.forward(ctx, await this.classify(ctx, entry), entry.state === 'frozen', marked);
        } else await this.runBatch(ctx, batch);
        ctx.batchesDone += 1;
        ran += 1;
        await this.progress(ctx);
      }
    } catch (error) {
      if (error instanceof MigrationInterruptedError) throw error;
      return { done: true, result: await this.fail(ctx, error) };
    }
    await this.retry(ctx.uid, 'set phase', () => this.journal.setPhase(ctx.uid, 'Succeeded', ''));
    await this.phase(ctx, 'Succeeded', '');
    return { done: true, result: this.finish(ctx, 'Succeeded', '', `${ctx.counters.moved} sessions moved`) };
  }

  private async runBatch(ctx: RunContext, batch: Batch): Promise<void> {
    const ids = batch.moves.flatMap((m) => m.sessionIds);
    const records = await this.retry(ctx.uid, 'read sessions', () => this.readStates(ctx.pool, ids));
    const sessions: JournalSession[] = [];
    for (const move of batch.moves) {
      for (const id of move.sessionIds) {
        const record = records.get(id);
        if (!record) {
          sessions.push({ id, from: move.from === '' ? null : move.from, fromEpoch: 0, to: move.to, result: 'missing' });
          continue;
        }
        const session: JournalSession = { id, from: record.owner, fromEpoch: record.epoch, to: move.to };
        // Owned by someone else than planned (or already by the target): not ours to move.
        if ((record.owner ?? '') !== move.from) session.result = 'conflict';
        sessions.push(session);
      }
    }
    const entry: BatchEntry = { index: batch.index, state: 'planned', sessions };
    await this.retry(ctx.uid, 'journal planned', () => this.journal.transition(ctx.uid, entry));
    await this.step(ctx, 'planned', batch.index);
    await this.forward(ctx, entry, false);
  }

  /**
   * Steps 2 to 6 for a batch journaled `planned` (or `frozen` on resume) whose sessions without a
   * result still need their move. `marked`: the sessions whose moving mark this batch sets
   * (and clears), i.e. those without a result when the batch was journaled.
   */
  private async forward(ctx: RunContext, entry: BatchEntry, frozen: boolean, marked?: string[]): Promise<void> {
    // A frozen batch (resumed) was past its handover: its sessions carry moving marks already.
    if (!frozen && this.options.handover) await this.handOver(ctx, entry);
    const pending = entry.sessions.filter((s) => s.result === undefined);
    const toMark = frozen ? [] : pending.map((s) => s.id);
    // Every session that may carry this migration's mark (an earlier attempt's too) is cleared at the end.
    const pendingIds = [...new Set([...(marked ?? []), ...toMark])];
    if (toMark.length > 0) {
      await this.retry(ctx.uid, 'set moving', () => this.store.setMoving(ctx.pool, toMark, ctx.uid));
    }
    if (!frozen) {
      await this.retry(ctx.uid, 'journal frozen', () => this.journal.transition(ctx.uid, { ...entry, state: 'frozen' }));
      await this.step(ctx, 'frozen', entry.index);
    }
    let cleared = new Set<string>();
    if (pending.length > 0) {
      await this.grace(ctx);
      cleared = await this.swap(
        ctx,
        pending.map((s) => ({ session: s, fromOwner: s.from, fromEpoch: s.fromEpoch, toOwner: s.to })),
        'forward',
      );
    }
    await this.step(ctx, 'owners-moved', entry.index);
    // The move script cleared the marks of the sessions it moved; clear the rest (conflicts, missing, re-read).
    const stillMarked = pendingIds.filter((id) => !cleared.has(id));
    if (stillMarked.length > 0) await this.retry(ctx.uid, 'clear moving', () => this.store.setMoving(ctx.pool, stillMarked, null));
    await this.step(ctx, 'moving-cleared', entry.index);
    const deltas = countResults(entry.sessions);
    const done: BatchEntry = { ...entry, state: 'moved' };
    if (await this.retry(ctx.uid, 'journal moved', () => this.journal.transition(ctx.uid, done, deltas))) {
      addCounters(ctx, deltas);
      if (deltas.moved) this.metrics.sessionsMoved.inc({ pool: ctx.pool, type: ctx.kind }, deltas.moved);
    }
    this.log.debug({ migration: ctx.uid, batch: entry.index, ...deltas }, 'batch moved');
    await this.step(ctx, 'moved', entry.index);
  }

  /**
   * Compare-and-swaps owners, writing each outcome into its session entry. A conflict is re-read:
   * already at the wanted owner with a larger epoch = done (an earlier attempt got through);
   * still at the expected owner = retried once with the current epoch; else a conflict.
   * Returns the ids whose moving mark the move itself cleared (migrateOwners replied moved).
   */
  private async swap(
    ctx: RunContext,
    items: { session: JournalSession; fromOwner: string | null; fromEpoch: number; toOwner: string | null }[],
    direction: 'forward' | 'back',
  ): Promise<Set<string>> {
    const cleared = new Set<string>();
    const migrate = this.store.migrateOwners?.bind(this.store);
    const done = direction === 'forward' ? 'moved' : 'rolledback';
    const failed = direction === 'forward' ? 'conflict' : 'rollbackConflict';
    const record = (s: JournalSession, epoch: number): void => {
      s.result = done;
      if (direction === 'forward') s.newEpoch = epoch;
      else s.rollbackEpoch = epoch;
    };
    let round = items;
    for (let attempt = 0; attempt < 2 && round.length > 0; attempt++) {
      const moves: OwnerMove[] = round.map((i) => ({
        sessionId: i.session.id,
        fromOwner: i.fromOwner,
        fromEpoch: i.fromEpoch,
        toOwner: i.toOwner,
      }));
      const outcomes = await this.retry(ctx.uid, 'move owners', () =>
        migrate ? migrate(ctx.pool, moves, ctx.uid) : this.store.moveOwners(ctx.pool, moves),
      );
      const byId = new Map<string, OwnerMoveOutcome>(outcomes.map((o) => [o.sessionId, o]));
      const conflicts: typeof items = [];
      for (const item of round) {
        const outcome = byId.get(item.session.id);
        if (!outcome) conflicts.push(item);
        else if (outcome.status === 'moved') {
          record(item.session, outcome.epoch);
          if (migrate) cleared.add(item.session.id);
        } else if (outcome.status === 'missing') item.session.result = 'missing';
        else conflicts.push(item);
      }
      if (conflicts.length === 0) break;
      const fresh = await this.retry(ctx.uid, 'read conflicts', () =>
        this.readStates(
          ctx.pool,
          conflicts.map((c) => c.session.id),
        ),
      );
      const next: typeof items = [];
      for (const item of conflicts) {
        const current = fresh.get(item.session.id);
        if (!current) item.session.result = 'missing';
        else if (current.owner === item.toOwner && current.epoch > item.fromEpoch) record(item.session, current.epoch);
        else if (current.owner === item.fromOwner && attempt === 0) next.push({ ...item, fromEpoch: current.epoch });
        else item.session.result = failed;
      }
      round = next;
    }
    return cleared;
  }

  /** Step 1b: the sources hand their live activations over (results written into the entry). */
  private async handOver(ctx: RunContext, entry: BatchEntry): Promise<void> {
    const handover = this.options.handover!;
    const deadlineMs = handover.deadlineMs ?? 10_000;
    const giveUpAt = Math.min(ctx.deadlineAt, this.now() + (handover.busyForMs ?? 3 * deadlineMs));
    const report = await handOver(entry.sessions, {
      call: handover.call,
      migration: ctx.uid,
      deadlineMs: Math.max(1, Math.min(deadlineMs, ctx.deadlineAt - this.now())),
      giveUpAt,
      now: this.now,
      sleep: this.sleep,
      busyRetryMs: handover.busyRetryMs ?? 500,
    });
    this.checkAborted(ctx.uid);
    this.log.debug({ migration: ctx.uid, batch: entry.index, ...report }, 'handover');
  }

  // --- failure, rollback, stop ----------------------------------------------------------------

  private async fail(ctx: RunContext, error: unknown): Promise<MigrationResult> {
    const failure =
      error instanceof MigrationFailure
        ? error
        : new MigrationFailure('StoreError', error instanceof Error ? error.message : String(error), { cause: error });
    this.metrics.failures.inc({ pool: ctx.pool, type: ctx.kind, reason: failure.reason });
    this.log.warn(
      { migration: ctx.uid, pool: ctx.pool, reason: failure.reason, err: failure.message, onFailure: ctx.onFailure },
      'migration failed',
    );
    if (ctx.onFailure === 'Rollback') return this.rollback(ctx, failure.reason, failure.message);
    return this.stop(ctx, failure);
  }

  /** Moves every moved session back to its previous owner, newest batch first; ends RolledBack. */
  private async rollback(ctx: RunContext, reason: string, message: string): Promise<MigrationResult> {
    try {
      await this.retry(ctx.uid, 'mark rollback', () => this.journal.markRollback(ctx.uid, reason));
      const entries = await this.retry(ctx.uid, 'read batches', () => this.journal.batches(ctx.uid));
      for (const stored of entries.reverse()) {
        if (stored.state === 'rolledback') continue;
        this.checkAborted(ctx.uid);
        const entry = stored.state === 'moved' ? stored : await this.classify(ctx, stored);
        const wasMoved = stored.state === 'moved' ? countResults(stored.sessions) : null;
        const back = entry.sessions.filter((s) => s.result === 'moved' && s.newEpoch !== undefined);
        const ids = back.map((s) => s.id);
        let cleared = new Set<string>();
        if (ids.length > 0) {
          await this.retry(ctx.uid, 'set moving', () => this.store.setMoving(ctx.pool, ids, ctx.uid));
          await this.grace(ctx, true);
          cleared = await this.swap(
            ctx,
            back.map((s) => ({ session: s, fromOwner: s.to, fromEpoch: s.newEpoch!, toOwner: s.from })),
            'back',
          );
        }
        // Clear every mark of the batch: sessions frozen but never moved are released too.
        const all = entry.sessions.filter((s) => s.result !== 'missing' && !cleared.has(s.id)).map((s) => s.id);
        if (all.length > 0) await this.retry(ctx.uid, 'clear moving', () => this.store.setMoving(ctx.pool, all, null));
        const rolledBack = entry.sessions.filter((s) => s.result === 'rolledback').length;
        const deltas: Partial<JournalCounters> = { rolledBack };
        // A batch that never reached `moved` had not been counted: count its expired and conflicts now.
        if (!wasMoved) {
          deltas.expired = entry.sessions.filter((s) => s.result === 'missing').length;
          deltas.failed = entry.sessions.filter((s) => s.result === 'conflict' || s.result === 'rollbackConflict').length;
          deltas.released = entry.sessions.filter((s) => s.result === 'released').length;
        } else deltas.failed = entry.sessions.filter((s) => s.result === 'rollbackConflict').length;
        if (
          await this.retry(ctx.uid, 'journal rolledback', () => this.journal.transition(ctx.uid, { ...entry, state: 'rolledback' }, deltas))
        )
          addCounters(ctx, deltas);
        await this.step(ctx, 'rolledback', entry.index);
      }
      await this.retry(ctx.uid, 'set phase', () => this.journal.setPhase(ctx.uid, 'RolledBack', reason));
    } catch (error) {
      if (error instanceof MigrationInterruptedError) throw error;
      this.log.error({ migration: ctx.uid, err: error instanceof Error ? error.message : String(error) }, 'rollback incomplete');
      throw new MigrationIncompleteError(ctx.uid, `rollback (${reason}) incomplete`, { cause: error });
    }
    await this.phase(ctx, 'RolledBack', reason);
    return this.finish(ctx, 'RolledBack', reason, `rolled back: ${message}`);
  }

  /** onFailure=Stop: finishes the batch in flight without moving more (moved stays moved), clears marks; ends Failed. */
  private async stop(ctx: RunContext, failure: MigrationFailure): Promise<MigrationResult> {
    try {
      const entries = await this.retry(ctx.uid, 'read batches', () => this.journal.batches(ctx.uid));
      for (const stored of entries) {
        if (stored.state === 'moved' || stored.state === 'rolledback') continue;
        const entry = await this.classify(ctx, stored);
        const ids = entry.sessions.filter((s) => s.result !== 'missing').map((s) => s.id);
        if (ids.length > 0) await this.retry(ctx.uid, 'clear moving', () => this.store.setMoving(ctx.pool, ids, null));
        const deltas = countResults(entry.sessions);
        if (await this.retry(ctx.uid, 'journal moved', () => this.journal.transition(ctx.uid, { ...entry, state: 'moved' }, deltas)))
          addCounters(ctx, deltas);
      }
      await this.retry(ctx.uid, 'set phase', () => this.journal.setPhase(ctx.uid, 'Failed', failure.reason));
    } catch (error) {
      throw new MigrationIncompleteError(ctx.uid, `stop after ${failure.reason} incomplete`, { cause: error });
    }
    await this.phase(ctx, 'Failed', failure.reason);
    return this.finish(ctx, 'Failed', failure.reason, failure.message);
  }

  /**
   * Re-reads the sessions of a batch journaled `planned` or `frozen` (interrupted) whose
   * outcome is not recorded: at the target with a larger epoch = moved; still at the source =
   * pending (with its current epoch); gone = missing; anywhere else = conflict.
   */
  private async classify(ctx: RunContext, entry: BatchEntry): Promise<BatchEntry> {
    const open = entry.sessions.filter((s) => s.result === undefined);
    const records = await this.retry(ctx.uid, 'read sessions', () =>
      this.readStates(
        ctx.pool,
        open.map((s) => s.id),
      ),
    );
    const sessions = entry.sessions.map((s) => {
      if (s.result !== undefined) return s;
      const record = records.get(s.id);
      if (!record) return { ...s, result: 'missing' as const };
      if (record.owner === s.to && record.epoch > s.fromEpoch) return { ...s, result: 'moved' as const, newEpoch: record.epoch };
      if (record.owner === s.from) return { ...s, fromEpoch: record.epoch };
      // Its source let it go (a handover found it idle, or it deactivated): nothing to move.
      if (record.owner === null && s.from !== null) return { ...s, result: 'released' as const };
      return { ...s, result: 'conflict' as const };
    });
    return { ...entry, sessions };
  }

  // --- helpers --------------------------------------------------------------------------------

  /** Owner and epoch of each session (absent ones left out): readOwners when the store has it, else get. */
  private async readStates(pool: string, ids: string[]): Promise<Map<string, Pick<OwnerState, 'owner' | 'epoch'>>> {
    if (ids.length === 0) return new Map();
    if (this.store.readOwners) return this.store.readOwners(pool, ids);
    const result = new Map<string, Pick<OwnerState, 'owner' | 'epoch'>>();
    const concurrency = this.options.readConcurrency ?? DEFAULTS.readConcurrency;
    for (let i = 0; i < ids.length; i += concurrency) {
      const chunk = ids.slice(i, i + concurrency);
      const records = await Promise.all(chunk.map((id) => this.store.get(id, { pool, touch: false })));
      for (const record of records) if (record) result.set(record.id, record);
    }
    return result;
  }

  private async checkTargets(ctx: RunContext, needed: Set<string>): Promise<void> {
    if (needed.size === 0) return;
    const workers = await this.retry(ctx.uid, 'list workers', () => this.store.listWorkers(ctx.pool));
    const ready = new Set(workers.filter((w) => !w.draining).map((w) => w.worker));
    const gone = [...needed].filter((t) => !ready.has(t));
    if (gone.length > 0) throw new MigrationFailure('TargetGone', `target worker(s) ${gone.join(', ')} no longer registered or draining`);
  }

  private async grace(ctx: RunContext, ignoreDeadline = false): Promise<void> {
    const graceMs = this.options.graceMs ?? DEFAULTS.graceMs;
    const wait = ignoreDeadline ? graceMs : Math.min(graceMs, Math.max(0, ctx.deadlineAt - this.now()));
    if (wait > 0) await this.sleep(wait);
  }

  private async retry<T>(uid: string, what: string, call: () => Promise<T>): Promise<T> {
    const retries = this.options.storeRetries ?? DEFAULTS.storeRetries;
    const delay = this.options.retryDelayMs ?? DEFAULTS.retryDelayMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (error instanceof MigrationFailure || error instanceof MigrationInterruptedError) throw error;
        if (attempt >= retries)
          throw new MigrationFailure('StoreError', `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
        this.log.debug(
          { migration: uid, what, attempt, err: error instanceof Error ? error.message : String(error) },
          'store call failed, retrying',
        );
        await this.sleep(backoffDelay(attempt + 1, { baseMs: delay, maxMs: Number.MAX_SAFE_INTEGER, jitter: 0 }));
      }
    }
  }

  private async step(ctx: RunContext, step: MigrationStep, index: number): Promise<void> {
    if (this.options.afterStep) await this.options.afterStep(step, index);
    this.checkAborted(ctx.uid);
  }

  private checkAborted(uid: string): void {
    if (this.options.signal?.aborted) throw new MigrationInterruptedError(uid);
  }

  private async progress(ctx: RunContext): Promise<void> {
    if (this.options.onProgress) await this.options.onProgress(ctx.uid, progressOf(ctx));
  }

  private async phase(ctx: RunContext, phase: MigrationPhase, reason: string): Promise<void> {
    this.metrics.setPhase(ctx.pool, ctx.uid, phase);
    if (this.options.onPhase) await this.options.onPhase(ctx.uid, phase, reason);
  }

  private result(ctx: RunContext, phase: TerminalPhase, reason: string, message: string): MigrationResult {
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

  private finish(ctx: RunContext, phase: TerminalPhase, reason: string, message: string): MigrationResult {
    const result = this.result(ctx, phase, reason, message);
    this.metrics.duration.observe({ type: ctx.kind, result: phase }, (result.endedAt - result.startedAt) / 1000);
    this.log.info({ migration: ctx.uid, pool: ctx.pool, phase, reason, ...result.progress }, 'migration ended');
    return result;
  }
}
