// Idempotency records: the outcome of a request sent with an Idempotency-Key, kept beside its
// session so that a retry with the same key gets the same answer without running the handler
// again. They live in one hash per session, `<session key>:i` (the session key's hash tag, so
// the same slot: one script writes the session and the record together). A field per key holds
// `{"at": ms, "reply": ...}`; the hash expires `keepMs` after its last record, entries older
// than `keepMs` read as absent, and at most `maxEntries` are kept per session (the oldest go).
import type { StoreCore } from './core.ts';
import { InvalidArgumentError, SessionNotFoundError } from './errors.ts';
import { assertName, assertPoolId, assertSessionId } from './keys.ts';
import { LuaScript, UPDATE } from './lua.ts';
import type { IdempotencyRecord, RecordedReply } from './types.ts';

export type { IdempotencyRecord, RecordedReply };

/** How long a record answers a retry, and how many one session keeps (docs/activation.md). */
export const IDEMPOTENCY_DEFAULTS = { keepMs: 3_600_000, maxEntries: 64 } as const;

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

// Records into KEYS[2]: ARGV[r] key, ARGV[r+1] record JSON, ARGV[r+2] keepMs, ARGV[r+3] maxEntries.
const RECORD = `
local function record(r)
  redis.call('HSET', KEYS[2], ARGV[r], ARGV[r + 1])
  local keep = tonumber(ARGV[r + 2])
  if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[r + 3]) then
    local all = redis.call('HGETALL', KEYS[2])
    local oldest, oldestAt = nil, nil
    for i = 1, #all, 2 do
      local ok, v = pcall(cjson.decode, all[i + 1])
      local at = ok and type(v) == 'table' and tonumber(v['at']) or 0
      if oldestAt == nil or at < oldestAt then oldest, oldestAt = all[i], at end
    end
    if oldest then redis.call('HDEL', KEYS[2], oldest) end
  end
  redis.call('PEXPIRE', KEYS[2], keep)
end
`;

/** KEYS[1] session, KEYS[2] records. ARGV 1-9 as UPDATE, then the record (10-13).
 *  UPDATE's reply; the record is written only when the update is. */
const UPDATE_RECORDED = `${RECORD}
local function update()
${UPDATE}
end
local r = update()
if r[1] == 1 then record(10) end
return r
`;

/** KEYS[1] session, KEYS[2] records. ARGV owner, epoch, then the record (3-6).
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
  return [record.key, JSON.stringify({ at: Date.now(), reply: record.reply }), keepMs, maxEntries];
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
    [key, idempotencyKeyOf(key)],
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
  await core.exec('forgetRecords', () => core.redis.del(idempotencyKeyOf(core.keys.session(pool, id))));
}
