// The SessionMigration phase machine and status builders: pure functions, no I/O, no clock
// (callers pass `now`), so every transition is unit-tested.
//
//   Pending -> Planning -> Running -> Succeeded | Failed | RolledBack
//                      \-> Succeeded (dry run: the plan only)
//   Pending | Planning -> Failed (invalid spec, nothing to plan against)
//
// Invariant kept here: a migration never leaves a terminal phase, and a status in Running
// always names the journal of the round it runs (so a restarted operator resumes from it and
// never re-plans over a half-done batch).
import type {
  Condition,
  MigrationPhase,
  MigrationPlan,
  MigrationProgress,
  SessionMigration,
  SessionMigrationStatus,
} from '../../api/index.ts';
import { TERMINAL_MIGRATION_PHASES } from '../../api/index.ts';
import { rfc3339, setCondition } from '../../kube/conditions.ts';
import type { PlanSummary } from '../../migration/planner.ts';

/** Condition types of a SessionMigration. */
export const CONDITION_PROGRESSING = 'Progressing';
export const CONDITION_SUCCEEDED = 'Succeeded';
export const CONDITION_PODS_EVICTED = 'PodsEvicted';

/** Reasons the controller writes (besides the executor's TargetGone, StoreError, DeadlineExceeded). */
export const REASONS = {
  Created: 'Created',
  Planning: 'Planning',
  Planned: 'Planned',
  DryRun: 'DryRun',
  Running: 'Running',
  Resumed: 'Resumed',
  Moved: 'SessionsMoved',
  NothingToMove: 'NothingToMove',
  InvalidSpec: 'InvalidSpec',
  PoolNotFound: 'PoolNotFound',
  NoTargets: 'NoTargets',
  NoSources: 'NoSources',
  StoreUnreachable: 'StoreUnreachable',
  SessionsLeft: 'SessionsLeft',
  EvictionBlocked: 'EvictionBlocked',
  PodsEvicted: 'PodsEvicted',
  ForcedRelease: 'ForcedRelease',
  NotPoolPods: 'NotPoolPods',
  DeadlineExceeded: 'DeadlineExceeded',
} as const;

const ALLOWED: Record<MigrationPhase, readonly MigrationPhase[]> = {
  Pending: ['Planning', 'Failed'],
  Planning: ['Running', 'Succeeded', 'Failed'],
  Running: ['Succeeded', 'Failed', 'RolledBack'],
  Succeeded: [],
  Failed: [],
  RolledBack: [],
};

export function isTerminal(phase: MigrationPhase | undefined): boolean {
  return phase !== undefined && TERMINAL_MIGRATION_PHASES.includes(phase);
}

/** The phase of a migration as read (no status yet = Pending). */
export function currentPhase(migration: Pick<SessionMigration, 'status'>): MigrationPhase {
  return migration.status?.phase ?? 'Pending';
}

export function canTransition(from: MigrationPhase, to: MigrationPhase): boolean {
  return ALLOWED[from].includes(to);
}

export class PhaseTransitionError extends Error {
  constructor(from: MigrationPhase, to: MigrationPhase) {
    super(`a SessionMigration cannot go from ${from} to ${to}`);
    this.name = 'PhaseTransitionError';
  }
}

export interface TransitionInput {
  reason: string;
  message: string;
  now: Date;
  generation?: number;
  plan?: MigrationPlan;
  progress?: MigrationProgress;
  journalKey?: string;
}

function conditionsFor(status: SessionMigrationStatus, to: MigrationPhase, input: TransitionInput): Condition[] {
  const g = input.generation;
  let conditions = status.conditions ?? [];
  if (isTerminal(to)) {
    conditions = setCondition(
      conditions,
      { type: CONDITION_PROGRESSING, status: 'False', reason: input.reason, message: input.message },
      g,
      input.now,
    );
    conditions = setCondition(
      conditions,
      { type: CONDITION_SUCCEEDED, status: to === 'Succeeded' ? 'True' : 'False', reason: input.reason, message: input.message },
      g,
      input.now,
    );
  } else {
    conditions = setCondition(
      conditions,
      { type: CONDITION_PROGRESSING, status: 'True', reason: input.reason, message: input.message },
      g,
      input.now,
    );
    conditions = setCondition(
      conditions,
      { type: CONDITION_SUCCEEDED, status: 'Unknown', reason: input.reason, message: `phase ${to}` },
      g,
      input.now,
    );
  }
  return conditions;
}

/**
 * The status after moving to `to`. Sets startTime on entering Planning (kept after), and
 * completionTime on entering a terminal phase. Throws PhaseTransitionError for a move the
 * machine does not allow; a move to the phase already held only refreshes reason, message
 * and the optional fields.
 */
export function transition(status: SessionMigrationStatus | undefined, to: MigrationPhase, input: TransitionInput): SessionMigrationStatus {
  const current = status ?? {};
  const from = current.phase ?? 'Pending';
  if (from !== to && !canTransition(from, to)) throw new PhaseTransitionError(from, to);
  const next: SessionMigrationStatus = { ...current, phase: to, reason: input.reason, message: input.message.slice(0, 32768) };
  if (input.generation !== undefined) next.observedGeneration = input.generation;
  if ((to === 'Planning' || to === 'Running' || isTerminal(to)) && !next.startTime) next.startTime = rfc3339(input.now);
  if (isTerminal(to) && !next.completionTime) next.completionTime = rfc3339(input.now);
  if (input.plan) next.plan = input.plan;
  if (input.progress) next.progress = input.progress;
  if (input.journalKey !== undefined) next.journalKey = input.journalKey;
  next.conditions = conditionsFor(current, to, input);
  return next;
}

/** The plan summary as the API writes it (at most 100 pairs; truncated when some were left out). */
export function apiPlan(summary: PlanSummary): MigrationPlan {
  const moves = summary.moves.slice(0, 100).map((m) => ({ from: m.from, to: m.to, sessions: m.sessions }));
  const truncated = summary.omittedMoves > 0 || summary.moves.length > moves.length;
  return { totalSessions: summary.totalSessions, ...(moves.length > 0 ? { moves } : {}), ...(truncated ? { truncated: true } : {}) };
}

/** Journal uid of evacuation round `round` of a migration (round 0 is the migration's uid). */
export function roundUid(uid: string, round: number): string {
  return round === 0 ? uid : `${uid}-r${round}`;
}

/** The round number of a journal uid of migration `uid` (inverse of roundUid), or undefined. */
export function roundOf(uid: string, journalUid: string): number | undefined {
  if (journalUid === uid) return 0;
  const match = new RegExp(`^${uid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-r(\\d+)$`).exec(journalUid);
  return match ? Number(match[1]) : undefined;
}

/** The header key of a pool's journal, the form written to status.journalKey (see migration/journal.ts). */
export function journalHeaderKey(prefix: string, pool: string, journalUid: string): string {
  return `{${prefix}:mig:${pool}:${journalUid}}:h`;
}

/** Inverse of journalHeaderKey: the journal uid (after the last `:`; neither a uid nor a pool holds one). */
export function journalUidFromKey(key: string): string | undefined {
  const match = /^\{[^{}]*:mig:[A-Za-z0-9._/-]+:([A-Za-z0-9._-]{1,128})\}:h$/.exec(key);
  return match?.[1];
}

/** Remaining time before the migration's deadline, from its start. */
export function remainingMs(startTime: string | undefined, deadlineSeconds: number, nowMs: number): number {
  const started = startTime ? Date.parse(startTime) : nowMs;
  return started + deadlineSeconds * 1000 - nowMs;
}
