// The SessionMigration state machine, one bounded step per reconcile (as CloudNativePG drives a
// switchover from status): which step comes next is decided here from the status and, while
// Running, the header of the round's journal. Pure functions, no I/O, no clock (callers pass
// the remaining time), so every decision is unit-tested; runner.ts carries the steps out.
//
//   Pending                              -> start: Planning, startTime set
//   Planning                             -> plan round 0 (dry run: Succeeded; no target yet: wait)
//   Running, no journal for its round    -> plan that round (a crash between status and journal)
//   Running, journal not ended           -> advance: batches for one time slice
//   Running, journal ended               -> afterRound: next round, finish, or fail
//   Running, PodsEvicted Unknown         -> removePods: one eviction or deletion pass
//   terminal, force-drain asked          -> forceRelease (once)
import type { SessionMigration } from '../../api/index.ts';
import type { JournalHeader } from '../../migration/journal.ts';
import { CONDITION_PODS_EVICTED, currentPhase, isTerminal, journalUidFromKey, roundOf, roundUid } from './phases.ts';

/** Most evacuation rounds (leftovers, or re-plans after a target died). */
export const MAX_ROUNDS = 5;
/** Reason of PodsEvicted=Unknown: the sessions are off the sources; their pods are being removed. */
export const REMOVING_PODS = 'RemovingPods';

export type Step =
  | { kind: 'done' }
  | { kind: 'forceRelease' }
  | { kind: 'start' }
  | { kind: 'plan'; round: number }
  | { kind: 'advance'; round: number; journalUid: string }
  | { kind: 'afterRound'; round: number; journalUid: string }
  | { kind: 'removePods' };

/** The round named by status.journalKey: its number and journal uid; undefined without a (valid) key. */
export function currentRound(m: Pick<SessionMigration, 'status' | 'metadata'>): { round: number; journalUid: string } | undefined {
  const key = m.status?.journalKey;
  const juid = key ? journalUidFromKey(key) : undefined;
  const uid = m.metadata.uid ?? m.metadata.name ?? '';
  const round = juid ? roundOf(uid, juid) : undefined;
  return juid && round !== undefined ? { round, journalUid: juid } : undefined;
}

export function forceReleaseDone(m: Pick<SessionMigration, 'status'>): boolean {
  return (m.status?.conditions ?? []).some((c) => c.type === 'ForcedRelease' && c.status === 'True');
}

export function removingPods(m: Pick<SessionMigration, 'status'>): boolean {
  return (m.status?.conditions ?? []).some(
    (c) => c.type === CONDITION_PODS_EVICTED && c.status === 'Unknown' && c.reason === REMOVING_PODS,
  );
}

/**
 * The next step from the status alone; `journal` is what the round's journal header says
 * ('absent' when there is none, undefined when not read: only needed while Running).
 */
export function nextStepOf(
  m: Pick<SessionMigration, 'status' | 'metadata' | 'spec'>,
  forced: boolean,
  journal?: Pick<JournalHeader, 'phase'> | 'absent',
): Step {
  const phase = currentPhase(m);
  if (isTerminal(phase)) return forced && m.spec.type === 'Evacuate' && !forceReleaseDone(m) ? { kind: 'forceRelease' } : { kind: 'done' };
  if (m.metadata.deletionTimestamp) return { kind: 'done' };
  if (phase === 'Pending') return { kind: 'start' };
  if (phase === 'Planning') return { kind: 'plan', round: 0 };
  if (removingPods(m)) return { kind: 'removePods' };
  const round = currentRound(m);
  // Running without a journal key has moved nothing (the key is written before the journal).
  if (!round) return { kind: 'plan', round: 0 };
  if (journal === undefined || journal === 'absent') return { kind: 'plan', round: round.round };
  if (journal.phase === 'Succeeded' || journal.phase === 'Failed' || journal.phase === 'RolledBack')
    return { kind: 'afterRound', ...round };
  return { kind: 'advance', ...round };
}

export type AfterRound =
  | { kind: 'nextRound'; round: number }
  | { kind: 'finish' }
  /** The round's own failure (its phase and reason) ends the migration. */
  | { kind: 'fail'; phase: 'Failed' | 'RolledBack'; reason: string }
  | { kind: 'sessionsLeft'; left: number };

export interface AfterRoundInput {
  type: SessionMigration['spec']['type'];
  round: number;
  header: Pick<JournalHeader, 'phase' | 'reason'>;
  /** Evacuate: sessions still owned by a source (undefined for other kinds). */
  left?: number;
  remainingMs: number;
}

/**
 * After a round's journal ended: an Evacuate repeats while sessions are left on its sources,
 * and re-plans onto the workers left after a round lost its target or the store (a failover);
 * every other kind ends with its one round.
 */
export function afterRound(input: AfterRoundInput): AfterRound {
  const { header, round } = input;
  const more = round + 1 < MAX_ROUNDS;
  if (header.phase === 'Succeeded') {
    if (input.type !== 'Evacuate' || (input.left ?? 0) === 0) return { kind: 'finish' };
    return more ? { kind: 'nextRound', round: round + 1 } : { kind: 'sessionsLeft', left: input.left ?? 0 };
  }
  const phase = header.phase === 'RolledBack' ? 'RolledBack' : 'Failed';
  const retryable = header.reason === 'TargetGone' || header.reason === 'StoreError';
  if (input.type === 'Evacuate' && retryable && input.remainingMs > 0 && more) return { kind: 'nextRound', round: round + 1 };
  return { kind: 'fail', phase, reason: header.reason || 'Failed' };
}

/**
 * How an Evacuate's source pods end once empty: evicted (the Eviction API deletes them with the
 * disruption budget holding; the operator is never granted a plain pod delete), or kept.
 */
export type PodRemoval = 'keep' | 'evict';

export function podRemoval(spec: SessionMigration['spec']): PodRemoval {
  return spec.type !== 'Evacuate' || spec.evacuate?.keepSourcePods ? 'keep' : 'evict';
}

/** Journal uids of the rounds before `round` (their counters add up to the migration's progress). */
export function earlierRounds(uid: string, round: number): string[] {
  return Array.from({ length: round }, (_, r) => roundUid(uid, r));
}
