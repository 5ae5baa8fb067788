// One batch of a migration, forward (steps 1 to 6 of docs/migration.md), in two halves so that
// batches can be pipelined (executor.ts): prepare (read, journal `planned`, handover, mark, journal
// `frozen`) and finish (the rest of the grace, the fenced swaps, clearing leftover marks, journal
// `moved`). Also the fenced swap itself (forward and back) and the re-read of an interrupted batch,
// which the rollback shares.
import type { OwnerMoveOutcome } from '../store/types.ts';
import type { BatchEntry, JournalSession } from './journal.ts';
import type { Batch } from './planner.ts';
import { handOver } from './handover.ts';
import { addCounters, countResults, type RunContext } from './executor-types.ts';
import type { ExecutorRuntime } from './runtime.ts';

/** A batch frozen and journaled `frozen`, waiting for its grace and its swaps. */
export interface PreparedBatch {
  entry: BatchEntry;
  /** Sessions without an outcome yet: to swap. */
  pending: JournalSession[];
  /** Every session that may carry this migration's mark (an earlier attempt's too): cleared at the end. */
  marked: string[];
  /** When the marks were set (the grace counts from there); 0 when nothing is pending. */
  frozenAt: number;
}

/** Step 1: reads each session's owner and epoch and journals the batch `planned`. */
export async function planBatch(rt: ExecutorRuntime, ctx: RunContext, batch: Batch): Promise<BatchEntry> {
  const ids = batch.moves.flatMap((m) => m.sessionIds);
  const records = await rt.retry(ctx.uid, 'read sessions', () => rt.owners.read(ctx.pool, ids), 'read');
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
  await rt.retry(ctx.uid, 'journal planned', () => rt.journal.transition(ctx.uid, entry), 'journal');
  await rt.step(ctx, 'planned', batch.index);
  return entry;
}

/**
 * Steps 1b and 2 for a batch journaled `planned` (or, on resume, `frozen`: its marks are set and
 * its handover is past). `journaled`: the entry is the one journaled `planned` by this run (so
 * `frozen` need not write it again unless the handover changed it). `marked` (resume): the
 * sessions whose mark an earlier attempt may have set.
 */
export async function prepareBatch(
  rt: ExecutorRuntime,
  ctx: RunContext,
  entry: BatchEntry,
  options: { frozen: boolean; journaled: boolean; marked?: string[] },
): Promise<PreparedBatch> {
  const handover = !options.frozen && rt.options.handover !== undefined;
  if (handover) await handOverBatch(rt, ctx, entry);
  const pending = entry.sessions.filter((s) => s.result === undefined);
  const toMark = options.frozen ? [] : pending.map((s) => s.id);
  const marked = [...new Set([...(options.marked ?? []), ...toMark])];
  if (toMark.length > 0) await rt.retry(ctx.uid, 'set moving', () => rt.owners.mark(ctx.pool, toMark, ctx.uid), 'marks');
  const frozenAt = rt.now();
  if (!options.frozen) {
    const keepEntry = options.journaled && !handover;
    await rt.retry(
      ctx.uid,
      'journal frozen',
      () => rt.journal.transition(ctx.uid, { ...entry, state: 'frozen' }, {}, { keepEntry }),
      'journal',
    );
    await rt.step(ctx, 'frozen', entry.index);
  }
  return { entry, pending, marked, frozenAt: pending.length > 0 ? frozenAt : 0 };
}

/** Steps 3 to 6: the rest of the grace, the swaps, leftover marks cleared, journal `moved`. */
export async function finishBatch(rt: ExecutorRuntime, ctx: RunContext, prepared: PreparedBatch, targets: Set<string>): Promise<void> {
  const { entry, pending } = prepared;
  let cleared = new Set<string>();
  if (pending.length > 0) {
    await rt.grace(ctx, prepared.frozenAt);
    // Checked again right before moving: a target may have gone while this batch was frozen.
    await rt.checkTargets(ctx, targets);
    cleared = await swap(
      rt,
      ctx,
      pending.map((s) => ({ session: s, fromOwner: s.from, fromEpoch: s.fromEpoch, toOwner: s.to })),
      'forward',
    );
  }
  await rt.step(ctx, 'owners-moved', entry.index);
  // The move script cleared the marks of the sessions it moved; clear the rest (conflicts, missing, re-read).
  const stillMarked = prepared.marked.filter((id) => !cleared.has(id));
  if (stillMarked.length > 0) await rt.retry(ctx.uid, 'clear moving', () => rt.owners.mark(ctx.pool, stillMarked, null), 'marks');
  await rt.step(ctx, 'moving-cleared', entry.index);
  const deltas = countResults(entry.sessions);
  const done: BatchEntry = { ...entry, state: 'moved' };
  if (await rt.retry(ctx.uid, 'journal moved', () => rt.journal.transition(ctx.uid, done, deltas), 'journal')) {
    addCounters(ctx, deltas);
    if (deltas.moved) rt.metrics.sessionsMoved.inc({ pool: ctx.pool, type: ctx.kind }, deltas.moved);
  }
  rt.log.debug({ migration: ctx.uid, batch: entry.index, ...deltas }, 'batch moved');
  await rt.step(ctx, 'moved', entry.index);
}

export interface SwapItem {
  session: JournalSession;
  fromOwner: string | null;
  fromEpoch: number;
  toOwner: string | null;
}

/**
 * Compare-and-swaps owners, writing each outcome into its session entry. A conflict is re-read:
 * already at the wanted owner with a larger epoch = done (an earlier attempt got through);
 * still at the expected owner = retried once with the current epoch; else a conflict.
 * Returns the ids whose moving mark the move itself cleared.
 */
export async function swap(rt: ExecutorRuntime, ctx: RunContext, items: SwapItem[], direction: 'forward' | 'back'): Promise<Set<string>> {
  const cleared = new Set<string>();
  const done = direction === 'forward' ? 'moved' : 'rolledback';
  const failed = direction === 'forward' ? 'conflict' : 'rollbackConflict';
  const record = (s: JournalSession, epoch: number): void => {
    s.result = done;
    if (direction === 'forward') s.newEpoch = epoch;
    else s.rollbackEpoch = epoch;
  };
  let round = items;
  for (let attempt = 0; attempt < 2 && round.length > 0; attempt++) {
    const moves = round.map((i) => ({ sessionId: i.session.id, fromOwner: i.fromOwner, fromEpoch: i.fromEpoch, toOwner: i.toOwner }));
    const { outcomes, clearsMarks } = await rt.retry(ctx.uid, 'move owners', () => rt.owners.migrate(ctx.pool, moves, ctx.uid), 'moves');
    const byId = new Map<string, OwnerMoveOutcome>(outcomes.map((o) => [o.sessionId, o]));
    const conflicts: SwapItem[] = [];
    for (const item of round) {
      const outcome = byId.get(item.session.id);
      if (!outcome) conflicts.push(item);
      else if (outcome.status === 'moved') {
        record(item.session, outcome.epoch);
        if (clearsMarks) cleared.add(item.session.id);
      } else if (outcome.status === 'missing') item.session.result = 'missing';
      else conflicts.push(item);
    }
    if (conflicts.length === 0) break;
    const ids = conflicts.map((c) => c.session.id);
    const fresh = await rt.retry(ctx.uid, 'read conflicts', () => rt.owners.read(ctx.pool, ids), 'read');
    const next: SwapItem[] = [];
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

/**
 * Re-reads the sessions of a batch journaled `planned` or `frozen` (interrupted) whose
 * outcome is not recorded: at the target with a larger epoch = moved; still at the source =
 * pending (with its current epoch); gone = missing; anywhere else = conflict.
 */
export async function classify(rt: ExecutorRuntime, ctx: RunContext, entry: BatchEntry): Promise<BatchEntry> {
  const open = entry.sessions.filter((s) => s.result === undefined).map((s) => s.id);
  const records = await rt.retry(ctx.uid, 'read sessions', () => rt.owners.read(ctx.pool, open), 'read');
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

/** Step 1b: the sources hand their live activations over (results written into the entry). */
async function handOverBatch(rt: ExecutorRuntime, ctx: RunContext, entry: BatchEntry): Promise<void> {
  const handover = rt.options.handover!;
  const deadlineMs = handover.deadlineMs ?? 10_000;
  const giveUpAt = Math.min(ctx.deadlineAt, rt.now() + (handover.busyForMs ?? 3 * deadlineMs));
  const report = await handOver(entry.sessions, {
    call: handover.call,
    migration: ctx.uid,
    deadlineMs: Math.max(1, Math.min(deadlineMs, ctx.deadlineAt - rt.now())),
    giveUpAt,
    now: rt.now,
    sleep: rt.sleep,
    busyRetryMs: handover.busyRetryMs ?? 500,
  });
  rt.checkAborted(ctx.uid);
  rt.log.debug({ migration: ctx.uid, batch: entry.index, ...report }, 'handover');
}
