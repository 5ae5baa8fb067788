// Live handover of activations, the first way a batch moves its sessions (docs/migration.md):
// the executor asks each source worker (POST /admin/handover, docs/worker.md) to hand its live
// activations to their targets; the worker finishes or holds the running request, moves the
// fenced lease with a compare-and-swap and forwards what was queued. What a source does not
// hand over (it is gone, does not answer, predates the endpoint, stays busy past the deadline,
// or reports a failure) is left to the store-level fenced move that follows, as before.
// The transport is injected (the controller's worker client), so this file has no I/O of its own.
import type { JournalSession } from './journal.ts';

export type HandoverOutcomeKind = 'moved' | 'idle' | 'busy' | 'failed';

export interface HandoverMove {
  sessionId: string;
  target: string;
}

export interface HandoverOutcome {
  sessionId: string;
  outcome: HandoverOutcomeKind;
  /** The fencing epoch the store now holds for the target (`moved`). */
  epoch?: number;
  message?: string;
}

/**
 * One POST /admin/handover to `source`: the per-session outcomes, or null when the source cannot
 * hand over at all (pod gone, connection refused, timeout, 404 from a worker older than the
 * endpoint, any other non-200): the caller then moves those sessions at store level.
 */
export type HandoverCall = (request: {
  migration: string;
  source: string;
  deadlineMs: number;
  moves: HandoverMove[];
}) => Promise<HandoverOutcome[] | null>;

/** The most moves in one request (the worker refuses more). */
export const MAX_HANDOVER_MOVES = 1000;

export interface HandoverOptions {
  call: HandoverCall;
  /** The journal uid of the round: sent as the request's `migration`. */
  migration: string;
  /** How long a source may wait for a running request, per call. */
  deadlineMs: number;
  /** Absolute time (ms) after which busy sessions are no longer retried. */
  giveUpAt: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Pause before asking again for sessions that were busy. */
  busyRetryMs: number;
}

export interface HandoverReport {
  moved: number;
  released: number;
  /** Sessions left to the store-level move, by why. */
  fallback: { unreachable: number; busy: number; failed: number; noEpoch: number };
}

/** Groups the moves by source, in chunks of at most MAX_HANDOVER_MOVES. Unowned sessions have no source to ask. */
export function handoverRequests(sessions: readonly JournalSession[]): { source: string; moves: HandoverMove[] }[] {
  const bySource = new Map<string, HandoverMove[]>();
  for (const s of sessions) {
    if (s.result !== undefined || s.from === null || s.from === '' || s.from === s.to) continue;
    const list = bySource.get(s.from) ?? [];
    list.push({ sessionId: s.id, target: s.to });
    bySource.set(s.from, list);
  }
  const requests: { source: string; moves: HandoverMove[] }[] = [];
  for (const [source, moves] of [...bySource].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    for (let i = 0; i < moves.length; i += MAX_HANDOVER_MOVES) requests.push({ source, moves: moves.slice(i, i + MAX_HANDOVER_MOVES) });
  return requests;
}

/**
 * Applies one answer to the journal sessions (in place): `moved` with an epoch becomes the
 * session's result (`newEpoch` is what a rollback compares against); `idle` means the source held
 * no activation and released any lease it still had: `released`. Returns the ids still busy and
 * counts of what is left to the store-level move.
 */
export function applyHandoverAnswer(
  byId: ReadonlyMap<string, JournalSession>,
  outcomes: readonly HandoverOutcome[],
  report: HandoverReport,
): string[] {
  const busy: string[] = [];
  for (const o of outcomes) {
    const session = byId.get(o.sessionId);
    if (!session || session.result !== undefined) continue;
    if (o.outcome === 'moved') {
      // Without the epoch a rollback could not compare: leave it to the store-level move, which re-reads it.
      if (typeof o.epoch !== 'number' || !Number.isSafeInteger(o.epoch)) report.fallback.noEpoch += 1;
      else {
        session.result = 'moved';
        session.newEpoch = o.epoch;
        report.moved += 1;
      }
    } else if (o.outcome === 'idle') {
      session.result = 'released';
      report.released += 1;
    } else if (o.outcome === 'busy') busy.push(o.sessionId);
    else report.fallback.failed += 1;
  }
  return busy;
}

/**
 * Hands the batch's sessions over, source by source; busy sessions are asked again until
 * `giveUpAt`. Sessions without a result afterwards go to the store-level move.
 */
export async function handOver(sessions: readonly JournalSession[], options: HandoverOptions): Promise<HandoverReport> {
  const report: HandoverReport = { moved: 0, released: 0, fallback: { unreachable: 0, busy: 0, failed: 0, noEpoch: 0 } };
  const byId = new Map(sessions.map((s) => [s.id, s]));
  let pending = handoverRequests(sessions);
  while (pending.length > 0) {
    const again: JournalSession[] = [];
    for (const request of pending) {
      const answer = await options.call({
        migration: options.migration,
        source: request.source,
        deadlineMs: options.deadlineMs,
        moves: request.moves,
      });
      if (answer === null) {
        report.fallback.unreachable += request.moves.length;
        continue;
      }
      const busy = applyHandoverAnswer(byId, answer, report);
      for (const id of busy) again.push(byId.get(id)!);
    }
    if (again.length === 0) break;
    if (options.now() + options.busyRetryMs >= options.giveUpAt) {
      report.fallback.busy += again.length;
      break;
    }
    await options.sleep(options.busyRetryMs);
    pending = handoverRequests(again);
  }
  return report;
}
