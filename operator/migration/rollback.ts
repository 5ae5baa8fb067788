// A migration's failure paths: onFailure=Rollback moves every moved session back (newest batch
// first, each with a CAS on its new owner and epoch, so its epoch grows again) and ends
// `RolledBack`; onFailure=Stop closes the batches in flight, keeps what moved, and ends `Failed`.
// Both run from the journal alone, so a resume after a crash continues them.
import type { JournalCounters } from './journal.ts';
import { classify, swap } from './batch.ts';
import {
  MigrationFailure,
  MigrationIncompleteError,
  MigrationInterruptedError,
  addCounters,
  countResults,
  type MigrationResult,
  type RunContext,
} from './executor-types.ts';
import type { ExecutorRuntime } from './runtime.ts';

export async function fail(rt: ExecutorRuntime, ctx: RunContext, error: unknown): Promise<MigrationResult> {
  const failure =
    error instanceof MigrationFailure
      ? error
      : new MigrationFailure('StoreError', error instanceof Error ? error.message : String(error), { cause: error });
  rt.metrics.failures.inc({ pool: ctx.pool, type: ctx.kind, reason: failure.reason });
  rt.log.warn(
    { migration: ctx.uid, pool: ctx.pool, reason: failure.reason, err: failure.message, onFailure: ctx.onFailure },
    'migration failed',
  );
  if (ctx.onFailure === 'Rollback') return rollback(rt, ctx, failure.reason, failure.message);
  return stop(rt, ctx, failure);
}

/** Moves every moved session back to its previous owner, newest batch first; ends RolledBack. */
export async function rollback(rt: ExecutorRuntime, ctx: RunContext, reason: string, message: string): Promise<MigrationResult> {
  try {
    await rt.retry(ctx.uid, 'mark rollback', () => rt.journal.markRollback(ctx.uid, reason));
    const entries = await rt.retry(ctx.uid, 'read batches', () => rt.journal.batches(ctx.uid));
    for (const stored of entries.reverse()) {
      if (stored.state === 'rolledback') continue;
      rt.checkAborted(ctx.uid);
      const entry = stored.state === 'moved' ? stored : await classify(rt, ctx, stored);
      const wasMoved = stored.state === 'moved';
      const back = entry.sessions.filter((s) => s.result === 'moved' && s.newEpoch !== undefined);
      const ids = back.map((s) => s.id);
      let cleared = new Set<string>();
      if (ids.length > 0) {
        await rt.retry(ctx.uid, 'set moving', () => rt.owners.mark(ctx.pool, ids, ctx.uid));
        await rt.grace(ctx, rt.now(), true);
        cleared = await swap(
          rt,
          ctx,
          back.map((s) => ({ session: s, fromOwner: s.to, fromEpoch: s.newEpoch!, toOwner: s.from })),
          'back',
        );
      }
      // Clear every mark of the batch: sessions frozen but never moved are released too.
      const all = entry.sessions.filter((s) => s.result !== 'missing' && !cleared.has(s.id)).map((s) => s.id);
      if (all.length > 0) await rt.retry(ctx.uid, 'clear moving', () => rt.owners.mark(ctx.pool, all, null));
      const rolledBack = entry.sessions.filter((s) => s.result === 'rolledback').length;
      const deltas: Partial<JournalCounters> = { rolledBack };
      // A batch that never reached `moved` had not been counted: count its expired and conflicts now.
      if (!wasMoved) {
        deltas.expired = entry.sessions.filter((s) => s.result === 'missing').length;
        deltas.failed = entry.sessions.filter((s) => s.result === 'conflict' || s.result === 'rollbackConflict').length;
        deltas.released = entry.sessions.filter((s) => s.result === 'released').length;
      } else deltas.failed = entry.sessions.filter((s) => s.result === 'rollbackConflict').length;
      if (await rt.retry(ctx.uid, 'journal rolledback', () => rt.journal.transition(ctx.uid, { ...entry, state: 'rolledback' }, deltas)))
        addCounters(ctx, deltas);
      await rt.step(ctx, 'rolledback', entry.index);
    }
    await rt.retry(ctx.uid, 'set phase', () => rt.journal.setPhase(ctx.uid, 'RolledBack', reason));
  } catch (error) {
    if (error instanceof MigrationInterruptedError) throw error;
    rt.log.error({ migration: ctx.uid, err: error instanceof Error ? error.message : String(error) }, 'rollback incomplete');
    throw new MigrationIncompleteError(ctx.uid, `rollback (${reason}) incomplete`, { cause: error });
  }
  await rt.phase(ctx, 'RolledBack', reason);
  return rt.finish(ctx, 'RolledBack', reason, `rolled back: ${message}`);
}

/** onFailure=Stop: finishes the batches in flight without moving more (moved stays moved), clears marks; ends Failed. */
async function stop(rt: ExecutorRuntime, ctx: RunContext, failure: MigrationFailure): Promise<MigrationResult> {
  try {
    const entries = await rt.retry(ctx.uid, 'read batches', () => rt.journal.batches(ctx.uid));
    for (const stored of entries) {
      if (stored.state === 'moved' || stored.state === 'rolledback') continue;
      const entry = await classify(rt, ctx, stored);
      const ids = entry.sessions.filter((s) => s.result !== 'missing').map((s) => s.id);
      if (ids.length > 0) await rt.retry(ctx.uid, 'clear moving', () => rt.owners.mark(ctx.pool, ids, null));
      const deltas = countResults(entry.sessions);
      if (await rt.retry(ctx.uid, 'journal moved', () => rt.journal.transition(ctx.uid, { ...entry, state: 'moved' }, deltas)))
        addCounters(ctx, deltas);
    }
    await rt.retry(ctx.uid, 'set phase', () => rt.journal.setPhase(ctx.uid, 'Failed', failure.reason));
  } catch (error) {
    throw new MigrationIncompleteError(ctx.uid, `stop after ${failure.reason} incomplete`, { cause: error });
  }
  await rt.phase(ctx, 'Failed', failure.reason);
  return rt.finish(ctx, 'Failed', failure.reason, failure.message);
}
