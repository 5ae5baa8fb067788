// Idempotency records: the outcome of a request sent with an Idempotency-Key, kept beside its
// session so that a retry with the same key gets the same answer without running the handler
// again. They live in one hash per session, `<session key>:i`, a field per key holding
// `{"at": ms, "reply": ...}`, and their order in a sorted set `<session key>:io` (key by time). Both
// carry the session key's hash tag, so the same slot: one script writes the session and the record
// together. Entries older than `keepMs` read as absent and are dropped at the next record; at most
// `maxEntries` are kept per session (the oldest go, found in the sorted set, not by a scan); both keys
// expire `keepMs` after the last record.
import type { StoreCore } from './core.ts';
import { InvalidArgumentError, SessionNotFoundError } from './errors.ts';
import { assertName, assertPoolId, assertSessionId } from './keys.ts';
import { LuaScript, UPDATE } from './lua.ts';
import type { IdempotencyRecord, RecordedReply } from './types.ts';

export type { IdempotencyRecord, RecordedReply };

/** How long a record answers a retry, and how many one session keeps (docs/activation.md). */
// 1,024 per session: a retry is answered from its record while fewer than that many later requests to
// the same session have been recorded. 64 was too few for a busy session: a client's retry that waited
// its backoff behind other clients' requests found its record gone and ran again (a SIGKILL test saw it).
export const IDEMPOTENCY_DEFAULTS = { keepMs: 3_600_000, maxEntries: 1_024 } as const;

/** Expired entries dropped by one record, at most: bounds the script's work; the rest go with the next ones. */
const EXPIRED_PER_RECORD = 32;

const KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** An Idempotency-Key as the store takes it: 1 to 128 printable ASCII characters without spaces. */
export function assertIdempotencyKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key))
    throw new InvalidArgumentError('an idempotency key is 1 to 128 printable ASCII characters without spaces');
}

/** The records' hash of a session: the session key and a suffix, so the same hash tag and slot. */
export function idempotencyKeyOf(sessionKey: string): string {
  return `${sessionKey}:i`;
}

/** The records' order (a sorted set of keys by record time), in the same slot. */
export function idempotencyOrderKeyOf(sessionKey: string): string {
  return `${sessionKey}:io`;
}

/** The keys a record script takes after the session key. */
export function recordKeysOf(sessionKey: string): [string, string] {
  return [idempotencyKeyOf(sessionKey), idempotencyOrderKeyOf(sessionKey)];
}

// Records into KEYS[2] (hash) and KEYS[3] (order): ARGV[r] key, ARGV[r+1] record JSON,
// ARGV[r+2] keepMs, ARGV[r+3] maxEntries, ARGV[r+4] the record's time (ms).
const RECORD = `
local function record(r)
  local key, keep, max, at = ARGV[r], tonumber(ARGV[r + 2]), tonumber(ARGV[r + 3]), tonumber(ARGV[r + 4])
  redis.call('HSET', KEYS[2], key, ARGV[r + 1])
  redis.call('ZADD', KEYS[3], at, key)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. (at - keep), 'LIMIT', 0, ${EXPIRED_PER_RECORD})
  for i = 1, #expired do
    redis.call('HDEL', KEYS[2], expired[i])
    redis.call('ZREM', KEYS[3], expired[i])
  end
  local excess = redis.call('ZCARD', KEYS[3]) - max
  if excess > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[3], excess)
    for i = 1, #oldest, 2 do redis.call('HDEL', KEYS[2], oldest[i]) end
  end
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
end
`;

/** KEYS[1] session, KEYS[2-3] records. ARGV 1-9 as UPDATE, then the record (10-14).
 *  UPDATE's reply; the record is written only when the update is. */
const UPDATE_RECORDED = `${RECORD}
local function update()
${UPDATE}
end
local r = update()
if r[1] == 1 then record(10) end
return r
`;

/** KEYS[1] session, KEYS[2-3] records. ARGV owner, epoch, then the record (3-7).
 *  Records when the session is still at owner and epoch (the writer's fence). Reply 1 | 0 fenced | -1 absent. */
const RECORD_FENCED = `${RECORD}
local h = load(KEYS[1])
if not h then return -1 end
if h[7] ~= ARGV[1] or tonumber(h[8]) ~= tonumber(ARGV[2]) then return 0 end
record(3)
return 1
`;

export const idempotencyScripts = {
  updateRecorded: new LuaScript('updateRecorded', UPDATE_RECORDED),
  recordFenced: new LuaScript('recordFenced', RECORD_FENCED),
};

/** The record's arguments, with the time it is made at. */
export function recordArgs(record: IdempotencyRecord): (string | number)[] {
  assertIdempotencyKey(record.key);
  const keepMs = record.keepMs ?? IDEMPOTENCY_DEFAULTS.keepMs;
  const maxEntries = record.maxEntries ?? IDEMPOTENCY_DEFAULTS.maxEntries;
  if (!Number.isInteger(keepMs) || keepMs < 1000) throw new InvalidArgumentError('idempotency keepMs must be an integer of at least 1000');
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new InvalidArgumentError('idempotency maxEntries must be a positive integer');
  const at = Date.now();
  return [record.key, JSON.stringify({ at, reply: record.reply }), keepMs, maxEntries, at];
}

/** Records an outcome that wrote nothing, if the session is still held at owner and epoch. False when fenced. */
export async function recordFenced(
  core: StoreCore,
  pool: string,
  id: string,
  fence: { owner: string; epoch: number },
  record: IdempotencyRecord,
) {
  assertPoolId(pool);
  assertSessionId(id);
  assertName('owner', fence.owner);
  const key = core.keys.session(pool, id);
  const reply = await core.script(
    'recordFenced',
    idempotencyScripts.recordFenced,
    [key, ...recordKeysOf(key)],
    [fence.owner, fence.epoch, ...recordArgs(record)],
  );
  if (reply === -1) throw new SessionNotFoundError(id);
  return reply === 1;
}

/** The recorded reply for a key, or undefined (none, or older than keepMs). */
export async function recordedReply(
  core: StoreCore,
  pool: string,
  id: string,
  key: string,
  keepMs: number = IDEMPOTENCY_DEFAULTS.keepMs,
): Promise<RecordedReply | undefined> {
  assertPoolId(pool);
  assertSessionId(id);
  assertIdempotencyKey(key);
  const raw = await core.exec('recordedReply', () => core.redis.hget(idempotencyKeyOf(core.keys.session(pool, id)), key));
  if (raw === null) return undefined;
  try {
    const parsed = JSON.parse(raw) as { at?: unknown; reply?: RecordedReply };
    if (typeof parsed.at !== 'number' || parsed.at + keepMs < Date.now() || !parsed.reply) return undefined;
    return parsed.reply;
  } catch {
    return undefined;
  }
}

/** Drops a session's records (when the session is deleted). */
export async function forgetRecords(core: StoreCore, pool: string, id: string): Promise<void> {
  assertPoolId(pool);
  assertSessionId(id);
  await core.exec('forgetRecords', () => core.redis.del(...recordKeysOf(core.keys.session(pool, id))));
}
