// POST /admin/handover (docs/activation.md, the runner's contract): the source worker hands live
// activations to target workers. Per move: hold S's queued requests, wait for its running one (up
// to the deadline), move the lease source -> target with a compare-and-swap on (owner, epoch),
// epoch + 1, drop the activation, and let the held requests go on to the target (one hop).
import type { Logger } from '../../observability/logger.ts';
import type { OwnerMove, OwnerMoveOutcome, SessionStore } from '../../store/types.ts';
import { SESSION_ID_PATTERN } from '../sessions/types.ts';
import { WorkerError, errorCode } from '../errors.ts';
import type { ActivationRegistry } from './registry.ts';

export const MAX_HANDOVER_MOVES = 1000;
const DEFAULT_DEADLINE_MS = 10_000;
const WORKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export interface HandoverRequest {
  migration: string;
  deadlineMs: number;
  moves: { sessionId: string; target: string }[];
}

export type HandoverOutcome = 'moved' | 'idle' | 'busy' | 'failed';

export interface HandoverResult {
  sessionId: string;
  outcome: HandoverOutcome;
  epoch?: number;
  message?: string;
}

function invalid(message: string): WorkerError {
  return new WorkerError('INVALID_REQUEST', `handover: ${message}`);
}

/** The body, checked whole before anything moves (400 on any fault). */
export function validateHandover(body: unknown): HandoverRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b))
    if (!['migration', 'deadlineMs', 'moves'].includes(key)) throw invalid(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  if (typeof b.migration !== 'string' || b.migration.length < 1 || b.migration.length > 512)
    throw invalid('migration must be a string of 1 to 512 characters');
  const deadlineMs = b.deadlineMs ?? DEFAULT_DEADLINE_MS;
  if (typeof deadlineMs !== 'number' || !Number.isInteger(deadlineMs) || deadlineMs < 0 || deadlineMs > 600_000)
    throw invalid('deadlineMs must be an integer from 0 to 600000');
  if (!Array.isArray(b.moves) || b.moves.length < 1 || b.moves.length > MAX_HANDOVER_MOVES)
    throw invalid(`moves must be an array of 1 to ${MAX_HANDOVER_MOVES} moves`);
  const seen = new Set<string>();
  const moves = b.moves.map((m: unknown, i) => {
    if (typeof m !== 'object' || m === null) throw invalid(`moves[${i}] must be an object`);
    const { sessionId, target, ...rest } = m as Record<string, unknown>;
    if (Object.keys(rest).length > 0) throw invalid(`moves[${i}] has unknown fields`);
    if (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId)) throw invalid(`moves[${i}].sessionId is not a session id`);
    if (typeof target !== 'string' || !WORKER_NAME.test(target)) throw invalid(`moves[${i}].target is not a worker name`);
    if (seen.has(sessionId)) throw invalid(`moves[${i}].sessionId is listed twice`);
    seen.add(sessionId);
    return { sessionId, target };
  });
  return { migration: b.migration, deadlineMs, moves };
}

export interface HandoverDeps {
  store: SessionStore;
  pool: string;
  worker: string;
  registry: ActivationRegistry;
  logger: Logger;
}

export async function handover(deps: HandoverDeps, body: unknown): Promise<{ results: HandoverResult[] }> {
  const request = validateHandover(body);
  const { registry, store, worker } = deps;
  const deadline = Date.now() + request.deadlineMs;
  const results = new Map<string, HandoverResult>();
  const held: { move: { sessionId: string; target: string }; epoch: number }[] = [];

  await Promise.all(
    request.moves.map(async (move) => {
      const { sessionId, target } = move;
      // An activation being set up (a request adopting the lease the last handover gave this worker) is
      // waited for: moved at store level meanwhile, its lease would be stale once it is set up.
      const activation = await registry.settled(sessionId);
      if (!activation) return void results.set(sessionId, await moveIfNamed(deps, sessionId, target));
      if (target === worker) return void results.set(sessionId, { sessionId, outcome: 'failed', message: 'the target is this worker' });
      // A migration wants the session: should this handover fail, it may move it at store level, so its
      // requests read the store again before running (no warm record).
      activation.contested = true;
      if (!(await activation.hold(deadline))) {
        activation.open();
        return void results.set(sessionId, { sessionId, outcome: 'busy', message: 'its running request did not finish by the deadline' });
      }
      held.push({ move, epoch: activation.epoch });
    }),
  );

  let outcomes: OwnerMoveOutcome[] = [];
  if (held.length > 0) {
    const moves: OwnerMove[] = held.map((h) => ({
      sessionId: h.move.sessionId,
      fromOwner: worker,
      fromEpoch: h.epoch,
      toOwner: h.move.target,
    }));
    try {
      outcomes = await store.moveOwners(deps.pool, moves);
    } catch (error) {
      // Unknown whether the CAS applied: the activations stay; the caller retries (a move already done answers idle).
      for (const h of held) {
        registry.get(h.move.sessionId)?.open();
        results.set(h.move.sessionId, {
          sessionId: h.move.sessionId,
          outcome: 'failed',
          message: `the store refused: ${errorCode(error) ?? 'error'}`,
        });
      }
    }
  }
  outcomes.forEach((outcome, i) => {
    const { move } = held[i]!;
    const activation = registry.get(move.sessionId);
    if (outcome.status === 'moved') {
      if (activation) {
        registry.handedOver(activation, move.target);
        activation.open();
      }
      results.set(move.sessionId, { sessionId: move.sessionId, outcome: 'moved', epoch: outcome.epoch });
      return;
    }
    // The store no longer names this activation (moved at store level, lapsed, or deleted): it is not ours.
    registry.drop(move.sessionId);
    activation?.open();
    const message =
      outcome.status === 'conflict' ? `the store names ${outcome.owner ?? 'no owner'} at epoch ${outcome.epoch}` : 'the session is gone';
    results.set(move.sessionId, { sessionId: move.sessionId, outcome: 'failed', message });
  });
  const ordered = request.moves.map((m) => results.get(m.sessionId)!);
  deps.logger.info(
    { migration: request.migration, moves: ordered.length, moved: ordered.filter((r) => r.outcome === 'moved').length },
    'handover done',
  );
  return { results: ordered };
}

/** No activation here: nothing to move, unless the store still names this worker (then the lease goes to the target). */
async function moveIfNamed(deps: HandoverDeps, sessionId: string, target: string): Promise<HandoverResult> {
  try {
    const record = await deps.store.get(sessionId, { touch: false, pool: deps.pool });
    if (!record || record.owner !== deps.worker) return { sessionId, outcome: 'idle' };
    // The store names this worker but no request has come since (a lease handed to it and not yet
    // adopted): hand the lease itself to the target, which adopts it on the next request. Releasing
    // it instead would let any worker claim the session, and a Migrate would not move it.
    const [outcome] = await deps.store.moveOwners(deps.pool, [
      { sessionId, fromOwner: deps.worker, fromEpoch: record.epoch, toOwner: target },
    ]);
    if (outcome?.status === 'moved') {
      // An activation set up here meanwhile holds the lease this move just gave away: it is stale.
      deps.registry.drop(sessionId);
      return { sessionId, outcome: 'moved', epoch: outcome.epoch };
    }
    return { sessionId, outcome: 'idle' };
  } catch (error) {
    return { sessionId, outcome: 'failed', message: `could not read the session: ${errorCode(error) ?? 'error'}` };
  }
}
