// Leases and owner moves. The session header holds owner, epoch and lease expiry, changed only
// by the scripts in lua.ts; the per-owner index ({pool:P#b}:owner:O) and the pool's lease
// index are updated around them: added to before the session step, removed from after, so
// a crash leaves an index naming too much (which the sweep repairs), never too little.
import type { StoreCore } from './core.ts';
import {
  InternalStoreError,
  InvalidArgumentError,
  LeaseLostError,
  SessionCorruptedError,
  SessionMovingError,
  SessionNotFoundError,
  SessionOwnedError,
} from './errors.ts';
import { assertName, assertPoolId, assertSessionId, indexBucket } from './keys.ts';
import { addToOwnerIndexes, dropLeases, removeFromOwnerIndexes, removeUnlessOwned, scoreLeases } from './indexes.ts';
import { H, SCHEMA_VERSION } from './codec.ts';
import { isCorruptReply } from './core.ts';
import { scripts, type LuaReply } from './lua.ts';
import type { Lease, OwnerMove, OwnerMoveOutcome, OwnerState } from './types.ts';

function leaseLength(core: StoreCore, leaseMs: number | undefined): number {
  const ms = leaseMs ?? core.settings.defaultLeaseMs;
  if (!Number.isInteger(ms) || ms < 1 || ms > 24 * 3600 * 1000)
    throw new InvalidArgumentError(`lease length must be 1 ms to 24 h, got ${ms}`);
  return ms;
}

/** A batch step's script for one session: a session found corrupted (quarantined by core.script) counts as
 *  absent (`missing`), so one bad session does not fail the batch. */
function orMissing(pending: Promise<LuaReply>): Promise<LuaReply> {
  return pending.catch((error: unknown) => {
    if (error instanceof SessionCorruptedError) return [-1];
    throw error;
  });
}

export async function claim(core: StoreCore, pool: string, id: string, owner: string, leaseMs?: number): Promise<Lease> {
  assertPoolId(pool);
  assertSessionId(id);
  assertName('owner', owner);
  const ms = leaseLength(core, leaseMs);
  const { keys, redis } = core;
  const bucket = indexBucket(id);
  await core.exec('claim', () =>
    Promise.all([redis.sadd(keys.ownerIndex(pool, owner, bucket), id), redis.sadd(keys.owners(pool, bucket), owner)]),
  );
  const reply = await core.script('claim', scripts.claim, [keys.session(pool, id)], [owner, ms]);
  const r = Array.isArray(reply) ? reply : [];
  if (r[0] !== 1) {
    // Checked: a move to this owner may have landed since the refusal.
    await core.exec('claim', () => removeUnlessOwned(core, pool, [{ owner, id }]));
    core.metrics.conflicts.inc({ op: 'claim', kind: r[0] === -1 ? 'missing' : r[0] === -4 ? 'moving' : 'owned' });
    if (r[0] === -1) throw new SessionNotFoundError(id);
    if (r[0] === -4) throw new SessionMovingError(id, String(r[1]));
    if (r[0] === -2) throw new SessionOwnedError(id, String(r[1]), Number(r[2]), Number(r[3]));
    throw new InternalStoreError(`claim: unexpected reply ${JSON.stringify(reply)}`);
  }
  const epoch = Number(r[1]);
  const expiresAt = Number(r[2]);
  const previous = String(r[3] ?? '');
  await core.afterWrite(keys.session(pool, id), id);
  await core.exec('claim', () =>
    Promise.all([
      redis.zadd(keys.leaseIndex(pool, bucket), expiresAt, id),
      ...(previous && previous !== owner ? [redis.srem(keys.ownerIndex(pool, previous, bucket), id)] : []),
    ]),
  );
  if (previous !== owner) core.logger.debug({ sessionId: id, owner, previousOwner: previous || null, epoch }, 'session claimed');
  return { sessionId: id, pool, owner, epoch, expiresAt };
}

function assertLease(lease: Lease): void {
  if (typeof lease !== 'object' || lease === null) throw new InvalidArgumentError('a lease object is required');
  assertSessionId(lease.sessionId);
  assertPoolId(lease.pool);
  assertName('owner', lease.owner);
  if (!Number.isInteger(lease.epoch) || lease.epoch < 0) throw new InvalidArgumentError('lease.epoch must be a non-negative integer');
}

export async function renew(core: StoreCore, lease: Lease, leaseMs?: number): Promise<Lease> {
  assertLease(lease);
  const ms = leaseLength(core, leaseMs);
  const { keys, redis } = core;
  const key = keys.session(lease.pool, lease.sessionId);
  const reply = await core.script('renew', scripts.renew, [key], [lease.owner, lease.epoch, ms]);
  const r = Array.isArray(reply) ? reply : [];
  if (r[0] === -1) throw new SessionNotFoundError(lease.sessionId);
  if (r[0] === -2) {
    core.metrics.conflicts.inc({ op: 'renew', kind: 'lease_lost' });
    throw new LeaseLostError(lease.sessionId, r[1] ? String(r[1]) : null, Number(r[2]));
  }
  const expiresAt = Number(r[1]);
  await core.afterWrite(key, lease.sessionId);
  await core.exec('renew', () => redis.zadd(keys.leaseIndex(lease.pool, indexBucket(lease.sessionId)), expiresAt, lease.sessionId));
  return { ...lease, expiresAt };
}

/** Gives the session up (owner cleared, epoch + 1). A lease already lost or a session gone is a no-op. */
export async function release(core: StoreCore, lease: Lease): Promise<void> {
  assertLease(lease);
  const { keys, redis } = core;
  const key = keys.session(lease.pool, lease.sessionId);
  const reply = await core.script('release', scripts.release, [key], [lease.owner, lease.epoch]);
  const r = Array.isArray(reply) ? reply : [];
  if (r[0] !== 1) {
    core.logger.debug({ sessionId: lease.sessionId, owner: lease.owner }, 'release of a lease no longer held: nothing to do');
    return;
  }
  const { pool } = lease;
  await core.afterWrite(key, lease.sessionId);
  const bucket = indexBucket(lease.sessionId);
  await core.exec('release', () =>
    Promise.all([
      redis.srem(keys.ownerIndex(pool, lease.owner, bucket), lease.sessionId),
      redis.zrem(keys.leaseIndex(pool, bucket), lease.sessionId),
    ]),
  );
  core.logger.debug({ sessionId: lease.sessionId, owner: lease.owner, epoch: Number(r[1]) }, 'lease released');
}

/** (owner, id) pairs of the items that name an owner. */
export function ownerEntries<T extends { sessionId: string }>(
  items: readonly T[],
  ownerOf: (item: T) => string | null,
): { owner: string; id: string }[] {
  const entries: { owner: string; id: string }[] = [];
  for (const item of items) {
    const owner = ownerOf(item);
    if (owner !== null) entries.push({ owner, id: item.sessionId });
  }
  return entries;
}

/** A move that applied, with its new lease's expiry (ms). */
export interface MovedOwner {
  move: OwnerMove;
  lease: number;
}

/** The index steps after moves: leave the source owners' indexes (and the target's of a refused move),
 *  and set or drop the lease-index entries. */
export function afterMoves(core: StoreCore, pool: string, moved: MovedOwner[], undo: OwnerMove[]): Promise<unknown>[] {
  const left = moved.flatMap(({ move }) => (move.fromOwner !== null ? [{ owner: move.fromOwner, id: move.sessionId }] : []));
  const refused = ownerEntries(undo, (m) => m.toOwner);
  const held = moved.filter((m) => m.move.toOwner).map((m) => ({ id: m.move.sessionId, expiresAt: m.lease }));
  const freed = moved.filter((m) => !m.move.toOwner).map((m) => m.move.sessionId);
  // A refused move's target entry is removed checked: another move to that target may have landed since.
  return [
    ...removeFromOwnerIndexes(core, pool, left),
    ...(refused.length > 0 ? [removeUnlessOwned(core, pool, refused)] : []),
    ...scoreLeases(core, pool, held),
    ...dropLeases(core, pool, freed),
  ];
}

/**
 * Each move is one CAS script on its session's slot (owner and epoch as the mover saw them);
 * the scripts are sent together (ioredis pipelines them per node). Index steps: add to the
 * target owners' indexes before, remove from the source owners' after. Every session is `pool`'s
 * (its key names the pool), so the index steps always name the right pool.
 */
export async function moveOwners(core: StoreCore, pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]> {
  assertPoolId(pool);
  assertMoves(moves);
  if (moves.length === 0) return [];
  const { keys, settings } = core;
  const targets = ownerEntries(moves, (m) => m.toOwner);
  if (targets.length > 0) await core.exec('moveOwners', () => Promise.all(addToOwnerIndexes(core, pool, targets)));
  // Each script retries on its own; a retry of a move that did apply sees the target state
  // (toOwner at fromEpoch + 1) and counts as moved.
  const replies = await Promise.all(
    moves.map((m) =>
      orMissing(
        core.script(
          'moveOwners',
          scripts.move,
          [keys.session(pool, m.sessionId)],
          [m.fromOwner ?? '', m.fromEpoch, m.toOwner ?? '', settings.defaultLeaseMs],
        ),
      ),
    ),
  );
  const outcomes: OwnerMoveOutcome[] = [];
  const moved: { move: OwnerMove; lease: number }[] = [];
  const undo: OwnerMove[] = [];
  replies.forEach((reply, i) => {
    const move = moves[i]!;
    const r = Array.isArray(reply) ? reply : [];
    const sessionId = move.sessionId;
    if (r[0] === 1) {
      outcomes.push({ sessionId, status: 'moved', epoch: Number(r[1]) });
      moved.push({ move, lease: Number(r[3]) });
    } else if (r[0] === -2 && (r[1] ? String(r[1]) : null) === move.toOwner && Number(r[2]) === move.fromEpoch + 1) {
      outcomes.push({ sessionId, status: 'moved', epoch: Number(r[2]) });
      moved.push({ move, lease: Date.now() + settings.defaultLeaseMs });
    } else if (r[0] === -2) {
      const owner = r[1] ? String(r[1]) : null;
      outcomes.push({ sessionId, status: 'conflict', owner, epoch: Number(r[2]) });
      core.metrics.conflicts.inc({ op: 'moveOwners', kind: 'owner_epoch' });
      if (move.toOwner && owner !== move.toOwner) undo.push(move);
    } else {
      outcomes.push({ sessionId, status: 'missing' });
      if (move.toOwner) undo.push(move);
    }
  });
  await core.afterWriteMany(moved.map((m) => ({ key: keys.session(pool, m.move.sessionId), sessionId: m.move.sessionId })));
  await core.exec('moveOwners', () => Promise.all(afterMoves(core, pool, moved, undo)));
  core.logger.debug(
    { pool, moves: moves.length, moved: moved.length, conflicts: outcomes.filter((o) => o.status === 'conflict').length },
    'owners moved',
  );
  return outcomes;
}

function assertMoves(moves: OwnerMove[]): void {
  if (!Array.isArray(moves)) throw new InvalidArgumentError('moves must be an array');
  for (const move of moves) {
    assertSessionId(move.sessionId);
    if (move.fromOwner !== null) assertName('owner', move.fromOwner);
    if (move.toOwner !== null) assertName('owner', move.toOwner);
    if (!Number.isInteger(move.fromEpoch) || move.fromEpoch < 0) throw new InvalidArgumentError('fromEpoch must be a non-negative integer');
  }
}

const INTEGER = /^-?[0-9]+$/;

/**
 * Owner, epoch, moving mark and pool of many sessions: one HGET of the header (`m`) per session, sent
 * together (auto-pipelining sends each node's share as one pipeline). Absent sessions are left out.
 * `suspect` lists ids whose value is unreadable (wrong type, malformed header, no integer epoch, no pool): the
 * caller reads them with get, which quarantines a corrupted session.
 */
export async function readOwners(
  core: StoreCore,
  pool: string,
  sessionIds: string[],
): Promise<{ states: Map<string, OwnerState>; suspect: string[] }> {
  assertPoolId(pool);
  if (!Array.isArray(sessionIds)) throw new InvalidArgumentError('sessionIds must be an array');
  sessionIds.forEach((id) => assertSessionId(id));
  const replies = await core.exec('readOwners', () => Promise.all(sessionIds.map((id) => core.headerParts(pool, id))));
  const states = new Map<string, OwnerState>();
  const suspect: string[] = [];
  replies.forEach((h, i) => {
    const sessionId = sessionIds[i]!;
    if (h === undefined) return; // absent
    const ep = h?.[H.ep];
    if (!h || !ep || !INTEGER.test(ep) || h[H.pool] !== pool || h[H.sv] !== SCHEMA_VERSION) return void suspect.push(sessionId);
    states.set(sessionId, { sessionId, pool, owner: h[H.own] || null, epoch: Number(ep), movingBy: h[H.mov] || null });
  });
  return { states, suspect };
}

/** What MIGRATE scripts answered, per move: the outcomes, the moves that applied (with their lease
 *  expiry), and the refused ones whose target index entry must be taken back. Shared with the
 *  migration's batched path (migration/bulk-owners.ts), which sends the same scripts otherwise. */
export function migrateOutcomes(
  core: StoreCore,
  moves: readonly OwnerMove[],
  replies: readonly LuaReply[],
): { outcomes: OwnerMoveOutcome[]; moved: MovedOwner[]; undo: OwnerMove[] } {
  const outcomes: OwnerMoveOutcome[] = [];
  const moved: MovedOwner[] = [];
  const undo: OwnerMove[] = [];
  replies.forEach((reply, i) => {
    const move = moves[i]!;
    const r = Array.isArray(reply) ? reply : [];
    if (r[0] === 1) {
      outcomes.push({ sessionId: move.sessionId, status: 'moved', epoch: Number(r[1]) });
      moved.push({ move, lease: Number(r[3]) });
    } else if (r[0] === -2) {
      const owner = r[1] ? String(r[1]) : null;
      outcomes.push({ sessionId: move.sessionId, status: 'conflict', owner, epoch: Number(r[2]) });
      core.metrics.conflicts.inc({ op: 'migrateOwners', kind: 'owner_epoch' });
      if (move.toOwner && owner !== move.toOwner) undo.push(move);
    } else {
      outcomes.push({ sessionId: move.sessionId, status: 'missing' });
      if (move.toOwner) undo.push(move);
    }
  });
  return { outcomes, moved, undo };
}

/**
 * moveOwners for a migration, in three round trips whatever the batch size:
 *   1. SADD each target owner's index (one command per target, many members) and the pool's owners set;
 *   2. one MIGRATE script per session (CAS on owner, epoch and pool; clears the moving mark if it is
 *      `migration`'s), sent together;
 *   3. SREM each source owner's index (one command per source), SREM refused sessions from the target
 *      indexes they were added to, and ZADD/ZREM the pool's lease index.
 * Same order as moveOwners (add before, remove after), so a crash between steps leaves an index
 * naming too much, which the sweep repairs. Every session must be in `pool` (a session of another
 * pool is refused as a conflict, so the index steps never name the wrong pool).
 */
export async function migrateOwners(core: StoreCore, pool: string, moves: OwnerMove[], migration: string): Promise<OwnerMoveOutcome[]> {
  assertPoolId(pool);
  assertName('migration', migration);
  assertMoves(moves);
  if (moves.length === 0) return [];
  const { keys, settings } = core;
  const targets = ownerEntries(moves, (m) => m.toOwner);
  if (targets.length > 0) await core.exec('migrateOwners', () => Promise.all(addToOwnerIndexes(core, pool, targets)));
  // Each script retries on its own; a retry of a move that did apply is refused (the session is at
  // toOwner with fromEpoch + 1), which the caller recognises by re-reading.
  const replies = await Promise.all(
    moves.map((m) =>
      orMissing(
        core.script(
          'migrateOwners',
          scripts.migrate,
          [keys.session(pool, m.sessionId)],
          [m.fromOwner ?? '', m.fromEpoch, m.toOwner ?? '', settings.defaultLeaseMs, pool, migration],
        ),
      ),
    ),
  );
  const { outcomes, moved, undo } = migrateOutcomes(core, moves, replies);
  await core.afterWriteMany(moved.map((m) => ({ key: keys.session(pool, m.move.sessionId), sessionId: m.move.sessionId })));
  await core.exec('migrateOwners', () => Promise.all(afterMoves(core, pool, moved, undo)));
  core.logger.debug(
    { pool, migration, moves: moves.length, moved: moved.length, conflicts: outcomes.filter((o) => o.status === 'conflict').length },
    'owners migrated',
  );
  return outcomes;
}

export async function setMoving(core: StoreCore, pool: string, sessionIds: string[], migration: string | null): Promise<void> {
  assertPoolId(pool);
  if (!Array.isArray(sessionIds)) throw new InvalidArgumentError('sessionIds must be an array');
  sessionIds.forEach((id) => assertSessionId(id));
  if (migration !== null) assertName('migration', migration);
  const { keys, redis } = core;
  await core.exec('setMoving', () =>
    Promise.all(
      sessionIds.map((id) =>
        scripts.setMoving
          .run(redis, [keys.session(pool, id)], [migration ?? ''])
          // A corrupted session is quarantined (then absent) instead of failing the batch.
          .catch(async (error: unknown) => {
            if (!isCorruptReply(error)) throw error;
            await core.quarantine(pool, id, 'header malformed');
            return 0;
          }),
      ),
    ),
  );
  await core.afterWriteMany(sessionIds.map((id) => ({ key: keys.session(pool, id), sessionId: id })));
  core.logger.debug({ pool, sessions: sessionIds.length, migration }, migration ? 'sessions marked moving' : 'moving mark cleared');
}
