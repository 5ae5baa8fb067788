// The migration journal in Redis: enough to finish or undo every batch after an operator
// restart. Three keys per migration, all under the hash tag {<prefix>:mig:<pool>:<uid>} so one
// Lua script changes a batch and the header's counters atomically (<pool> is the pool identity,
// `<namespace>/<name>`, which holds no `:`; without the option `pool` the tag is
// {<prefix>:mig:<uid>}, for tests of the journal alone):
//   {<prefix>:mig:<pool>:<uid>}:h   hash: the header (uid, pool, kind, phase, plan summary, counters, times)
//   {<prefix>:mig:<pool>:<uid>}:b   hash: s:<i> = batch state, e:<i> = batch entry (JSON)
//   {<prefix>:mig:<pool>:<uid>}:p   hash: <i> = the planned batch (JSON: [{from, to, sessionIds}]), written once
// and one index of the pool's unfinished migrations, {<prefix>:migs:<pool>}:active (sorted set
// uid -> createdAt), so a restarted operator can find them. The index is in another slot: it is
// updated after the header (add) and before the TTL (remove), both idempotent.
//
// A batch state only moves forward: planned -> frozen -> moved, and any of these -> rolledback.
// A transition to the state the batch is already in, or backwards, changes nothing (the script
// returns 0), so applying an entry twice is harmless and counters are never counted twice.
import type { Cluster } from 'ioredis';
import type { Batch, MigrationKind, PlannedMove, PlanSummary } from './planner.ts';
import { assertPoolId } from '../store/keys.ts';

export type BatchState = 'planned' | 'frozen' | 'moved' | 'rolledback';
export type MigrationPhase = 'Pending' | 'Planning' | 'Running' | 'Succeeded' | 'Failed' | 'RolledBack';
export type OnFailure = 'Rollback' | 'Stop';

export const TERMINAL_PHASES: readonly MigrationPhase[] = ['Succeeded', 'Failed', 'RolledBack'];

/** What happened to one session of a batch. `released`: its source held no live activation and
 *  let the lease go (a handover answered `idle`): an idle session needs no move. */
export type SessionResult = 'moved' | 'released' | 'conflict' | 'missing' | 'rolledback' | 'rollbackConflict';

export interface JournalSession {
  id: string;
  /** Owner before the move (null when unowned) and its epoch, read when the batch was planned. */
  from: string | null;
  fromEpoch: number;
  to: string;
  /** Epoch after the move, once moved. */
  newEpoch?: number;
  /** Epoch after the move back, once rolled back. */
  rollbackEpoch?: number;
  result?: SessionResult;
}

export interface BatchEntry {
  index: number;
  state: BatchState;
  sessions: JournalSession[];
}

export interface JournalCounters {
  moved: number;
  /** Sessions whose source released them idle (nothing to move). */
  released: number;
  failed: number;
  expired: number;
  rolledBack: number;
}

export interface JournalHeader extends JournalCounters {
  uid: string;
  pool: string;
  kind: MigrationKind;
  phase: MigrationPhase;
  onFailure: OnFailure;
  summary: PlanSummary;
  batchCount: number;
  totalSessions: number;
  reason: string;
  createdAt: number;
  updatedAt: number;
  /** ms since epoch by which the migration must end (0 = none). */
  deadlineAt: number;
  /** Set (with the failure reason) once a rollback has started: a resume continues it. */
  rollbackReason: string;
}

export interface JournalOptions {
  /** Key prefix inside the hash tag; default 'spo'. */
  prefix?: string;
  /** The pool identity (`<namespace>/<name>`) whose migrations this journal holds: part of every key,
   *  and the only pool create() accepts. The operator always sets it. */
  pool?: string;
  /** TTL of a finished journal; default 7 days. */
  ttlSeconds?: number;
  now?: () => number;
}

export const DEFAULT_JOURNAL_TTL_SECONDS = 7 * 24 * 3600;

const STATE_RANK: Record<BatchState, number> = { planned: 1, frozen: 2, moved: 3, rolledback: 4 };

/** The journal's one rule: a batch state only moves forward (the Lua script applies the same). */
export function canTransition(current: BatchState | null | undefined, next: BatchState): boolean {
  return !current || STATE_RANK[current] < STATE_RANK[next];
}

// KEYS[1] header, KEYS[2] batches. ARGV: index, state, entry JSON ('' keeps the stored entry), now, then counter
// deltas as name/value pairs. Allowed: from nothing to anything; forward by rank; never from
// rolledback; moved -> rolledback allowed (rank grows).
const TRANSITION_SCRIPT = `
local cur = redis.call('HGET', KEYS[2], 's:' .. ARGV[1])
local ranks = { planned = 1, frozen = 2, moved = 3, rolledback = 4 }
local want = ranks[ARGV[2]]
if not want then return redis.error_reply('unknown state ' .. ARGV[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOJOURNAL migration journal is missing') end
if cur and ranks[cur] >= want then return 0 end
if ARGV[3] == '' then
  redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ARGV[2])
else
  redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ARGV[2], 'e:' .. ARGV[1], ARGV[3])
end
for i = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[4])
return 1
`;

// KEYS[1] header. ARGV: phase, reason, now, ttl (0 = none). Never leaves a terminal phase.
const PHASE_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'phase')
if not cur then return redis.error_reply('NOJOURNAL migration journal is missing') end
if cur == 'Succeeded' or cur == 'Failed' or cur == 'RolledBack' then return 0 end
redis.call('HSET', KEYS[1], 'phase', ARGV[1], 'reason', ARGV[2], 'updatedAt', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
`;

export class JournalMissingError extends Error {
  readonly code = 'JOURNAL_MISSING';
  constructor(uid: string) {
    super(`no migration journal for ${uid}`);
    this.name = 'JournalMissingError';
  }
}

export interface CreateJournalInput {
  uid: string;
  pool: string;
  kind: MigrationKind;
  onFailure: OnFailure;
  summary: PlanSummary;
  batchCount: number;
  deadlineAt: number;
}

function validUid(uid: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(uid)) throw new Error(`migration uid '${uid}' must be 1-128 characters of [A-Za-z0-9._-]`);
  return uid;
}

export interface TransitionOptions {
  keepEntry?: boolean;
}

/** What the executor needs of a journal; MigrationJournal (Redis) and MemoryJournal (tests) implement it. */
export interface Journal {
  create(input: CreateJournalInput): Promise<boolean>;
  header(uid: string): Promise<JournalHeader | null>;
  /** `keepEntry`: the stored entry is this one already (only the state changes): it is not written again. */
  transition(uid: string, entry: BatchEntry, deltas?: Partial<JournalCounters>, options?: TransitionOptions): Promise<boolean>;
  batch(uid: string, index: number): Promise<BatchEntry | null>;
  batches(uid: string): Promise<BatchEntry[]>;
  savePlan(uid: string, batches: readonly Batch[]): Promise<void>;
  plan(uid: string): Promise<Batch[]>;
  markRollback(uid: string, reason: string): Promise<void>;
  setPhase(uid: string, phase: MigrationPhase, reason?: string): Promise<boolean>;
  listActive(): Promise<string[]>;
  remove(uid: string): Promise<void>;
}

export class MigrationJournal implements Journal {
  readonly redis: Cluster;
  readonly prefix: string;
  readonly pool: string | undefined;
  readonly ttlSeconds: number;
  private readonly now: () => number;

  constructor(redis: Cluster, options: JournalOptions = {}) {
    this.redis = redis;
    this.prefix = options.prefix ?? 'spo';
    if (options.pool !== undefined) assertPoolId(options.pool);
    this.pool = options.pool;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_JOURNAL_TTL_SECONDS;
    this.now = options.now ?? Date.now;
  }

  keys(uid: string): { header: string; batches: string; plan: string; active: string } {
    const scope = this.pool === undefined ? '' : `:${this.pool}`;
    const tag = `{${this.prefix}:mig${scope}:${validUid(uid)}}`;
    return { header: `${tag}:h`, batches: `${tag}:b`, plan: `${tag}:p`, active: `{${this.prefix}:migs${scope}}:active` };
  }

  /** Creates the header (phase Running). Idempotent: an existing journal is left as it is; returns whether it was created. */
  async create(input: CreateJournalInput): Promise<boolean> {
    if (this.pool !== undefined && input.pool !== this.pool)
      throw new Error(`migration journal of pool ${this.pool} cannot hold a migration of pool ${input.pool}`);
    const k = this.keys(input.uid);
    const now = this.now();
    const fields: Record<string, string> = {
      uid: input.uid,
      pool: input.pool,
      kind: input.kind,
      phase: 'Running',
      onFailure: input.onFailure,
      summary: JSON.stringify(input.summary),
      batchCount: String(input.batchCount),
      totalSessions: String(input.summary.totalSessions),
      reason: '',
      createdAt: String(now),
      updatedAt: String(now),
      deadlineAt: String(input.deadlineAt),
      rollbackReason: '',
      moved: '0',
      released: '0',
      failed: '0',
      expired: '0',
      rolledBack: '0',
    };
    const created = (await this.redis.eval(
      `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
       redis.call('HSET', KEYS[1], unpack(ARGV))
       return 1`,
      1,
      k.header,
      ...Object.entries(fields).flat(),
    )) as number;
    await this.redis.zadd(k.active, String(now), input.uid);
    return created === 1;
  }

  async header(uid: string): Promise<JournalHeader | null> {
    const raw = await this.redis.hgetall(this.keys(uid).header);
    if (!raw.phase) return null;
    const num = (name: string): number => Number(raw[name] ?? 0);
    return {
      uid: raw.uid ?? uid,
      pool: raw.pool ?? '',
      kind: raw.kind as MigrationKind,
      phase: raw.phase as MigrationPhase,
      onFailure: (raw.onFailure ?? 'Rollback') as OnFailure,
      summary: JSON.parse(raw.summary ?? '{"totalSessions":0,"moves":[],"omittedMoves":0}') as PlanSummary,
      batchCount: num('batchCount'),
      totalSessions: num('totalSessions'),
      reason: raw.reason ?? '',
      createdAt: num('createdAt'),
      updatedAt: num('updatedAt'),
      deadlineAt: num('deadlineAt'),
      rollbackReason: raw.rollbackReason ?? '',
      moved: num('moved'),
      released: num('released'),
      failed: num('failed'),
      expired: num('expired'),
      rolledBack: num('rolledBack'),
    };
  }

  /**
   * Writes a batch entry in a new state, adding the counter deltas, only if that is a forward
   * transition. Returns false (and changes nothing) when the batch is already there or beyond.
   */
  async transition(
    uid: string,
    entry: BatchEntry,
    deltas: Partial<JournalCounters> = {},
    options: TransitionOptions = {},
  ): Promise<boolean> {
    const k = this.keys(uid);
    const json = options.keepEntry ? '' : JSON.stringify(entry);
    const args: string[] = [String(entry.index), entry.state, json, String(this.now())];
    for (const [name, value] of Object.entries(deltas)) if (value) args.push(name, String(value));
    try {
      return ((await this.redis.eval(TRANSITION_SCRIPT, 2, k.header, k.batches, ...args)) as number) === 1;
    } catch (error) {
      if (error instanceof Error && error.message.includes('NOJOURNAL')) throw new JournalMissingError(uid);
      throw error;
    }
  }

  async batch(uid: string, index: number): Promise<BatchEntry | null> {
    const [state, json] = await this.redis.hmget(this.keys(uid).batches, `s:${index}`, `e:${index}`);
    if (!state || !json) return null;
    const entry = JSON.parse(json) as BatchEntry;
    return { ...entry, state: state as BatchState };
  }

  /** Every journaled batch, in index order. Batches never journaled are absent. */
  async batches(uid: string): Promise<BatchEntry[]> {
    const raw = await this.redis.hgetall(this.keys(uid).batches);
    const entries: BatchEntry[] = [];
    for (const [field, json] of Object.entries(raw)) {
      if (!field.startsWith('e:')) continue;
      const index = Number(field.slice(2));
      const state = raw[`s:${index}`] as BatchState | undefined;
      const entry = JSON.parse(json) as BatchEntry;
      entries.push({ ...entry, index, state: state ?? entry.state });
    }
    return entries.sort((a, b) => a.index - b.index);
  }

  /** Sets the phase; a terminal phase also sets the TTL and leaves the active index. Never leaves a terminal phase. */
  async setPhase(uid: string, phase: MigrationPhase, reason = ''): Promise<boolean> {
    const k = this.keys(uid);
    const terminal = TERMINAL_PHASES.includes(phase);
    let changed: boolean;
    try {
      changed =
        ((await this.redis.eval(
          PHASE_SCRIPT,
          3,
          k.header,
          k.batches,
          k.plan,
          phase,
          reason,
          String(this.now()),
          String(terminal ? this.ttlSeconds : 0),
        )) as number) === 1;
    } catch (error) {
      if (error instanceof Error && error.message.includes('NOJOURNAL')) throw new JournalMissingError(uid);
      throw error;
    }
    if (terminal) await this.redis.zrem(k.active, uid);
    return changed;
  }

  /** Writes the planned batches (before the first batch runs). Idempotent: HSET of the same values. */
  /** Writes the plan, replacing any earlier one (a partial plan left by a crash before its header was created). */
  async savePlan(uid: string, batches: readonly Batch[]): Promise<void> {
    const k = this.keys(uid);
    await this.redis.del(k.plan);
    for (let i = 0; i < batches.length; i += 50) {
      const fields = batches.slice(i, i + 50).flatMap((b) => [String(b.index), JSON.stringify(b.moves)]);
      await this.redis.hset(k.plan, ...fields);
    }
  }

  /** The planned batches, in index order. */
  async plan(uid: string): Promise<Batch[]> {
    const raw = await this.redis.hgetall(this.keys(uid).plan);
    return Object.entries(raw)
      .map(([index, json]) => ({ index: Number(index), moves: JSON.parse(json) as PlannedMove[] }))
      .sort((a, b) => a.index - b.index);
  }

  /** Records that a rollback started, and why; a resume then continues the rollback. */
  async markRollback(uid: string, reason: string): Promise<void> {
    const k = this.keys(uid);
    const done = (await this.redis.eval(
      `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
       redis.call('HSET', KEYS[1], 'rollbackReason', ARGV[1], 'updatedAt', ARGV[2])
       return 1`,
      1,
      k.header,
      reason,
      String(this.now()),
    )) as number;
    if (done !== 1) throw new JournalMissingError(uid);
  }

  /** Uids of migrations not yet in a terminal phase (oldest first). */
  async listActive(): Promise<string[]> {
    return this.redis.zrange(this.keys('x').active, '0', '-1');
  }

  /** Seconds left before the header expires (-1: no TTL, -2: absent). */
  async ttlOf(uid: string): Promise<number> {
    return this.redis.ttl(this.keys(uid).header);
  }

  /** Removes a journal at once (tests, or a forced cleanup). */
  async remove(uid: string): Promise<void> {
    const k = this.keys(uid);
    await this.redis.del(k.header, k.batches, k.plan);
    await this.redis.zrem(k.active, uid);
  }

  /** Rank of a state, for callers comparing progress. */
  static rank(state: BatchState): number {
    return STATE_RANK[state];
  }
}
