// The migration executor's types, errors and pure bookkeeping (counters, progress), apart
// from the executor itself (executor.ts, which re-exports them).
import type { Logger } from '../observability/logger.ts';
import type { Registry } from 'prom-client';
import type { HandoverCall } from './handover.ts';
import type { Journal, JournalCounters, JournalHeader, JournalSession, MigrationPhase, OnFailure } from './journal.ts';
import type { SessionStore } from '../store/types.ts';
import type { OwnerOps } from './owner-ops.ts';
import type { Batch, MigrationKind, Plan, PlanSummary } from './planner.ts';

export type FailureReason = 'TargetGone' | 'StoreError' | 'DeadlineExceeded';
export type TerminalPhase = 'Succeeded' | 'Failed' | 'RolledBack';
/** Points after which a test (through `afterStep` and `signal`) can simulate a crash. */
export type MigrationStep = 'planned' | 'frozen' | 'owners-moved' | 'moving-cleared' | 'moved' | 'rolledback';

export const DEFAULTS = {
  batchSize: 2000,
  graceMs: 100,
  deadlineMs: 10 * 60_000,
  storeRetries: 3,
  retryDelayMs: 100,
  readConcurrency: 2000,
  pipelineDepth: 2,
} as const;

export interface MigrationSpec {
  /** The SessionMigration's uid (or any unique id): names the journal. */
  uid: string;
  pool: string;
  plan: Plan;
  batchSize?: number;
  onFailure?: OnFailure;
  /** The whole migration must end within this many ms of its start. */
  deadlineMs?: number;
  /** Plan only: nothing is journaled or moved. */
  dryRun?: boolean;
}

export interface MigrationProgress {
  moved: number;
  /** Released idle by their source during a handover (nothing to move). */
  released: number;
  remaining: number;
  failed: number;
  expired: number;
  rolledBack: number;
  batchesDone: number;
  batchCount: number;
}

export interface MigrationResult {
  uid: string;
  pool: string;
  kind: MigrationKind;
  phase: TerminalPhase;
  /** '' on success; else a FailureReason. */
  reason: string;
  message: string;
  dryRun: boolean;
  summary: PlanSummary;
  progress: MigrationProgress;
  startedAt: number;
  endedAt: number;
}

export interface ExecutorOptions {
  store: SessionStore;
  journal: Journal;
  registry?: Registry;
  logger?: Logger;
  batchSize?: number;
  /** Wait between freezing a batch and swapping its owners. */
  graceMs?: number;
  deadlineMs?: number;
  /** Retries of a failed store call before the migration fails with StoreError. */
  storeRetries?: number;
  retryDelayMs?: number;
  /** Session reads in flight at once (pipelined by the client). Default 2000. Only for a store
   *  without readOwners (which takes a whole batch at once). */
  readConcurrency?: number;
  /** After each batch (the reconciler writes it to status). */
  onProgress?: (uid: string, progress: MigrationProgress) => void | Promise<void>;
  /** On each phase change (the reconciler emits an Event). */
  onPhase?: (uid: string, phase: MigrationPhase, reason: string) => void | Promise<void>;
  /** Aborting stops the executor at the next step without touching anything more (a crash, as far as the journal is concerned). */
  signal?: AbortSignal;
  afterStep?: (step: MigrationStep, batchIndex: number) => void | Promise<void>;
  /** Complete plans by journal uid, kept by a caller that advances a migration slice by slice
   *  (a saved plan never changes): each slice then skips reading it back. */
  planCache?: Map<string, Batch[]>;
  /** Live handover through the source workers before the store-level move (handover.ts). */
  handover?: {
    call: HandoverCall;
    /** Per request: how long a source waits for a running request. Default 10 s. */
    deadlineMs?: number;
    /** Pause before asking again for busy sessions. Default 500 ms. */
    busyRetryMs?: number;
    /** How long busy sessions are asked again, from the batch's first request. Default 3 * deadlineMs. */
    busyForMs?: number;
  };
  /** Batches in flight at once (default 2): the next batch is read, journaled and frozen while the
   *  one before waits out its grace and swaps. 1 runs them one after another. */
  pipelineDepth?: number;
  /** How the owner reads, marks and swaps reach the store; default: batched per master for a
   *  RedisSessionStore (bulk-owners.ts), else the store's own batch calls (owner-ops.ts). */
  ownerOps?: OwnerOps;
  /** When given, milliseconds spent per part (read, marks, moves, journal, grace, checks) are added
   *  to it: the benchmark's breakdown. Parts of pipelined batches overlap, so the sum exceeds the wall time. */
  timings?: Map<string, number>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export class MigrationFailure extends Error {
  readonly reason: FailureReason;
  constructor(reason: FailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationFailure';
    this.reason = reason;
  }
}

/** The executor was aborted (signal): the journal holds where it stopped; call resume(uid). */
export class MigrationInterruptedError extends Error {
  constructor(uid: string) {
    super(`migration ${uid} interrupted; resume it from its journal`);
    this.name = 'MigrationInterruptedError';
  }
}

/** Where advance() left a migration: ended (its result), or paused between batches with more to do. */
export type AdvanceResult = { done: true; result: MigrationResult } | { done: false; progress: MigrationProgress };

/** A rollback could not finish (the store kept failing): the journal says so; call resume(uid) later. */
export class MigrationIncompleteError extends Error {
  constructor(uid: string, message: string, options?: { cause?: unknown }) {
    super(`migration ${uid}: ${message}; resume it from its journal later`, options);
    this.name = 'MigrationIncompleteError';
  }
}

export interface RunContext {
  uid: string;
  pool: string;
  kind: MigrationKind;
  onFailure: OnFailure;
  summary: PlanSummary;
  batches: Batch[];
  deadlineAt: number;
  startedAt: number;
  counters: JournalCounters;
  batchesDone: number;
}

/** The counter deltas of a batch's results. */
export function countResults(sessions: readonly JournalSession[]): Partial<JournalCounters> {
  let moved = 0;
  let released = 0;
  let failed = 0;
  let expired = 0;
  for (const s of sessions) {
    if (s.result === 'moved') moved++;
    else if (s.result === 'released') released++;
    else if (s.result === 'conflict') failed++;
    else if (s.result === 'missing') expired++;
  }
  return { moved, released, failed, expired };
}

export function addCounters(ctx: RunContext, deltas: Partial<JournalCounters>): void {
  ctx.counters.moved += deltas.moved ?? 0;
  ctx.counters.released += deltas.released ?? 0;
  ctx.counters.failed += deltas.failed ?? 0;
  ctx.counters.expired += deltas.expired ?? 0;
  ctx.counters.rolledBack += deltas.rolledBack ?? 0;
}

/** Sessions of the plan with no outcome yet. */
export function remainingOf(ctx: RunContext): number {
  const c = ctx.counters;
  return Math.max(0, ctx.summary.totalSessions - c.moved - c.released - c.failed - c.expired);
}

export function progressOf(ctx: RunContext): MigrationProgress {
  const c = ctx.counters;
  return {
    moved: c.moved,
    released: c.released,
    remaining: remainingOf(ctx),
    failed: c.failed,
    expired: c.expired,
    rolledBack: c.rolledBack,
    batchesDone: ctx.batchesDone,
    batchCount: ctx.batches.length,
  };
}

/** The header of a journal as a result, for callers that only read (status of a finished migration). */
export function headerProgress(header: JournalHeader): Omit<MigrationProgress, 'batchesDone' | 'batchCount'> {
  return {
    moved: header.moved,
    released: header.released,
    remaining: Math.max(0, header.totalSessions - header.moved - header.released - header.failed - header.expired),
    failed: header.failed,
    expired: header.expired,
    rolledBack: header.rolledBack,
  };
}
