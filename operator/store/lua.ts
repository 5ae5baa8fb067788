// The Lua scripts. Each touches the keys of one slot only (KEYS share one hash tag) and uses
// the master's clock (TIME), so leases and timestamps agree whichever client writes.
// docs/store.md specifies each one (arguments, effects, replies) for other implementations.
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { HEADER_MAX_BYTES, SCHEMA_VERSION } from './codec.ts';

/**
 * What the prelude's `load` reads of a value for a script that changes only the header: at least the longest
 * header (HEADER_MAX_BYTES), and enough that a value this small is read whole, so that a header whose length
 * changes (a moving mark, a release) costs no second read of it. A larger value's data stays in Redis unless
 * the header's length changes (docs/store.md "Scripts").
 */
export const LOAD_PREFIX_BYTES = 4 * HEADER_MAX_BYTES;

const PRELUDE = `
-- A session is one string: its header (the 13 parts of H joined by a newline), a newline, then the data.
-- H: pool v ca la ttl anon own ep mov lease cs sv wid (1-based index in a parsed header below).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function corrupt()
  error({err = 'CORRUPT session is malformed'})
end
-- The header parts of a session value and the position where its data starts; nil when the value does
-- not have 13 newline-ended header parts. One pattern match (13 captures and the position after them)
-- costs half of 13 string.find and string.sub calls; a part never holds a newline, so nothing backtracks.
local HEADER = '^' .. string.rep('([^\\n]*)\\n', 13) .. '()'
local function parse(s)
  local p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, at = string.match(s, HEADER)
  if not p1 then return nil end
  return {p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13}, at
end
-- The parsed header of KEYS[1], its value (whole, or only its first ${LOAD_PREFIX_BYTES} bytes) and the data's position;
-- nil when the key is absent. Scripts that change only the header read a prefix that holds any header
-- (GETRANGE): a session's data (a DSPy program and its conversation, often many KiB) is not copied into
-- Lua to renew a lease or move an owner. \`whole\`: read the whole value (GET). A key that is not a string or
-- has no well-formed header (13 parts, sv '${SCHEMA_VERSION}', integer v, ttl and ep) raises CORRUPT: the client
-- quarantines the session. Any other error of the read (a key this node does not serve, met by the
-- migration's multi-key calls, bulk-owners.ts) is raised as it is: nothing is corrupt.
local function load(key, whole)
  local s
  if whole then s = redis.pcall('GET', key) else s = redis.pcall('GETRANGE', key, 0, ${LOAD_PREFIX_BYTES - 1}) end
  if not s then return nil end
  if type(s) == 'table' and s.err and not string.find(s.err, '^WRONGTYPE') then error(s) end
  if type(s) ~= 'string' then corrupt() end
  -- GETRANGE reads an absent key as '': absent, unless an empty value is stored (corrupt, below).
  if s == '' and not whole and redis.call('EXISTS', key) == 0 then return nil end
  local h, at = parse(s)
  if not h or h[12] ~= '${SCHEMA_VERSION}' or not tonumber(h[2]) or not tonumber(h[5]) or not tonumber(h[8]) then corrupt() end
  return h, s, at
end
-- Writes a changed header in front of the unchanged data (value s as load read it, data at position at),
-- keeping the TTL: in place (SETRANGE, only the header replicated) when its length is unchanged, as for a
-- touch or a renew; else the whole value again, its data read now when load read only a prefix.
local function save(key, h, s, at)
  local m = table.concat(h, '\\n')
  if #m == at - 2 then
    redis.call('SETRANGE', key, 0, m)
  else
    if #s >= ${LOAD_PREFIX_BYTES} then s = redis.call('GET', key) end
    redis.call('SET', key, m .. '\\n' .. string.sub(s, at), 'KEEPTTL')
  end
  return m
end
`;

/** KEYS[1] session. ARGV pool, data, cs, ttlSeconds, anon, owner, wid, leaseMs, schema.
 *  Reply {1, header} created (or this wid's create already applied: the data is ARGV data) | {0} id taken. */
export const CREATE = `
local s = redis.pcall('GET', KEYS[1])
if s then
  local h = type(s) == 'string' and parse(s)
  if h and h[13] == ARGV[7] then return {1, table.concat(h, '\\n')} end
  return {0}
end
local now = now_ms()
local owned = ARGV[6] ~= ''
local m = table.concat({ARGV[1], 1, now, now, ARGV[4], ARGV[5], ARGV[6], owned and 1 or 0, '',
  owned and (now + tonumber(ARGV[8])) or 0, ARGV[3], ARGV[9], ARGV[7]}, '\\n')
redis.call('SET', KEYS[1], m .. '\\n' .. ARGV[2], 'PX', tonumber(ARGV[4]) * 1000)
return {1, m}
`;

/** KEYS[1] session. ARGV pool, data, cs, ttlSeconds, anon, owner, wid, leaseMs, schema, version, createdAt.
 *  Like CREATE but with the caller's version and createdAt (a session copied in from elsewhere).
 *  Reply {1, value} imported (or this wid's import already applied) | {0, value} present already (a value
 *  that is not a string is returned as false). */
export const IMPORT = `
local s = redis.pcall('GET', KEYS[1])
if s then
  if type(s) ~= 'string' then return {0, false} end
  local h = parse(s)
  if h and h[13] == ARGV[7] then return {1, s} end
  return {0, s}
end
local now = now_ms()
local owned = ARGV[6] ~= ''
local m = table.concat({ARGV[1], ARGV[10], ARGV[11], now, ARGV[4], ARGV[5], ARGV[6], owned and 1 or 0, '',
  owned and (now + tonumber(ARGV[8])) or 0, ARGV[3], ARGV[9], ARGV[7]}, '\\n')
local value = m .. '\\n' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', tonumber(ARGV[4]) * 1000)
return {1, value}
`;

/** KEYS[1] session. ARGV touch ('1' or '0').
 *  Reply the value (with la = now when touched) | false when absent. Touch sets la and slides the TTL.
 *  A malformed session raises CORRUPT. */
export const GET = `
local h, s, at = load(KEYS[1], true)
if not h then return false end
if ARGV[1] == '1' then
  h[4] = now_ms()
  local m = save(KEYS[1], h, s, at)
  redis.call('PEXPIRE', KEYS[1], tonumber(h[5]) * 1000)
  return m .. '\\n' .. string.sub(s, at)
end
return s
`;

/** KEYS[1] session. ARGV granularityMs.
 *  The coarse touch of a get that read the session with a plain GET: sets la = now and slides the TTL
 *  only when the last slide (la) is at least min(granularityMs, ttl/10) old on the master's clock.
 *  Reply {1, la, now} touched | {0, la, now} not due | {0, 0, now} absent or malformed. */
export const TOUCH = `
local now = now_ms()
local s = redis.pcall('GET', KEYS[1])
if type(s) ~= 'string' then return {0, 0, now} end
local h, at = parse(s)
local ttl = h and tonumber(h[5])
if not ttl then return {0, 0, now} end
local la = tonumber(h[4])
if la and now - la < math.min(tonumber(ARGV[1]), ttl * 100) then return {0, la, now} end
h[4] = now
save(KEYS[1], h, s, at)
redis.call('PEXPIRE', KEYS[1], ttl * 1000)
return {1, now, now}
`;

/** KEYS[1] session. ARGV expectedVersion, data, cs, wid, fenced ('1'/'0'), fenceEpoch, hasFenceOwner ('1'/'0'),
 *  fenceOwner, granularityMs.
 *  Reply {1, header} (the record's header; its data is ARGV data) | {-1} missing | {-2, version} conflict
 *  | {-3, owner, epoch} fenced | {-4, movingBy} moving.
 *  Writes the header (v, wid, cs; la only when the last slide is at least min(granularityMs, ttl/10) old, then
 *  also the TTL) and the data. */
export const UPDATE = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
local v = tonumber(h[2])
if h[13] == ARGV[4] and v == tonumber(ARGV[1]) + 1 then return {1, table.concat(h, '\\n')} end
if ARGV[5] == '1' then
  if tonumber(h[8]) ~= tonumber(ARGV[6]) then return {-3, h[7], h[8]} end
  if ARGV[7] == '1' and h[7] ~= ARGV[8] then return {-3, h[7], h[8]} end
  if h[9] ~= '' then return {-4, h[9]} end
end
if v ~= tonumber(ARGV[1]) then return {-2, h[2]} end
h[2], h[11], h[13] = v + 1, ARGV[3], ARGV[4]
local ttl = tonumber(h[5])
local la = tonumber(h[4])
local now = now_ms()
local slide = not la or now - la >= math.min(tonumber(ARGV[9]), ttl * 100)
if slide then h[4] = now end
local m = table.concat(h, '\\n')
if slide then
  redis.call('SET', KEYS[1], m .. '\\n' .. ARGV[2], 'PX', ttl * 1000)
else
  redis.call('SET', KEYS[1], m .. '\\n' .. ARGV[2], 'KEEPTTL')
end
return {1, m}
`;

/** KEYS[1] session. ARGV value, expected (a header and its newline), la, ttl, granularityMs, laAt.
 *  The fast path of an update whose client knows the stored header: when the stored value starts with
 *  `expected` byte for byte, writes `value` (the new header, a newline, the new data) as it is. Parses
 *  nothing: the client made the new header from `expected` (v + 1, its cs and wid) after checking, against
 *  it, everything UPDATE checks. `la` and `ttl` are that header's own. When no slide is due (as UPDATE
 *  judges it) the TTL is kept; when one is, the TTL is slid and the 13 digits of `la` at offset `laAt` of the
 *  value are overwritten with now (`laAt` -1: not possible, nothing is written).
 *  Reply 1 written | now (ms) written and slid | 0 not written (the header changed): the client runs UPDATE. */
export const WRITE_IF_HEADER = `
local stored = redis.pcall('GETRANGE', KEYS[1], 0, #ARGV[2] - 1)
if stored ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
if now - tonumber(ARGV[3]) < math.min(tonumber(ARGV[5]), ttl * 100) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
  return 1
end
local la = string.format('%d', now)
if tonumber(ARGV[6]) < 0 or #la ~= 13 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl * 1000)
redis.call('SETRANGE', KEYS[1], tonumber(ARGV[6]), la)
return now
`;

/** KEYS[1] session. Reply {1, pool, owner} deleted | {0}. */
export const DELETE = `
local s = redis.pcall('GET', KEYS[1])
if redis.call('DEL', KEYS[1]) == 0 then return {0} end
local h = type(s) == 'string' and parse(s) or {}
return {1, h[1] or '', h[7] or ''}
`;

/** KEYS[1] session. ARGV owner, leaseMs.
 *  Reply {1, epoch, leaseExpiresAt, previousOwner, pool} | {-1} | {-2, owner, epoch, lease} owned | {-4, movingBy}. */
export const CLAIM = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
local now = now_ms()
local own, ep, lease = h[7], tonumber(h[8]), tonumber(h[10]) or 0
local expires = now + tonumber(ARGV[2])
if own == ARGV[1] then
  h[10] = expires
  save(KEYS[1], h, s, at)
  return {1, ep, expires, own, h[1]}
end
if h[9] ~= '' then return {-4, h[9]} end
if own ~= '' and lease > now then return {-2, own, ep, lease} end
h[7], h[8], h[10] = ARGV[1], ep + 1, expires
save(KEYS[1], h, s, at)
return {1, ep + 1, expires, own, h[1]}
`;

/** KEYS[1] session. ARGV owner, epoch, leaseMs. Reply {1, leaseExpiresAt, pool} | {-1} | {-2, owner, epoch}. */
export const RENEW = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
if h[7] ~= ARGV[1] or tonumber(h[8]) ~= tonumber(ARGV[2]) then return {-2, h[7], h[8]} end
local expires = now_ms() + tonumber(ARGV[3])
h[10] = expires
save(KEYS[1], h, s, at)
return {1, expires, h[1]}
`;

/** KEYS[1] session. ARGV owner, epoch. Reply {1, newEpoch, pool} released | {-1} | {-2, owner, epoch}. */
export const RELEASE = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
if h[7] ~= ARGV[1] or tonumber(h[8]) ~= tonumber(ARGV[2]) then return {-2, h[7], h[8]} end
local ep = tonumber(h[8]) + 1
h[7], h[8], h[10] = '', ep, 0
save(KEYS[1], h, s, at)
return {1, ep, h[1]}
`;

/** KEYS[1] session. ARGV fromOwner ('' = none), fromEpoch, toOwner ('' = none), leaseMs.
 *  Reply {1, newEpoch, pool, leaseExpiresAt} | {-1} | {-2, owner, epoch}. Ignores movingBy: the mover moves. */
export const MOVE = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
if h[7] ~= ARGV[1] or tonumber(h[8]) ~= tonumber(ARGV[2]) then return {-2, h[7], h[8]} end
local ep = tonumber(h[8]) + 1
local lease = 0
if ARGV[3] ~= '' then lease = now_ms() + tonumber(ARGV[4]) end
h[7], h[8], h[10] = ARGV[3], ep, lease
save(KEYS[1], h, s, at)
return {1, ep, h[1], lease}
`;

/** KEYS[1] session. ARGV fromOwner ('' = none), fromEpoch, toOwner ('' = none), leaseMs, pool, migration.
 *  MOVE for a migration: the CAS also checks the pool, and on success clears `mov` when it is `migration`
 *  (one call instead of MOVE plus SET_MOVING ''). A refused move changes nothing (the mark stays).
 *  Reply {1, newEpoch, pool, leaseExpiresAt, previousOwner} | {-1} | {-2, owner, epoch, mov}. */
export const MIGRATE = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
local own = h[7]
if own ~= ARGV[1] or tonumber(h[8]) ~= tonumber(ARGV[2]) or h[1] ~= ARGV[5] then return {-2, own, h[8], h[9]} end
local ep = tonumber(h[8]) + 1
local lease = 0
if ARGV[3] ~= '' then lease = now_ms() + tonumber(ARGV[4]) end
h[7], h[8], h[10] = ARGV[3], ep, lease
if ARGV[6] ~= '' and h[9] == ARGV[6] then h[9] = '' end
save(KEYS[1], h, s, at)
return {1, ep, h[1], lease, own}
`;

/** KEYS[1] session. ARGV migration ('' clears). Reply 1 set | 0 absent. */
export const SET_MOVING = `
local h, s, at = load(KEYS[1])
if not h then return 0 end
if h[9] ~= ARGV[1] then
  h[9] = ARGV[1]
  save(KEYS[1], h, s, at)
end
return 1
`;

/** KEYS[1] session. Reply {1, previousOwner, newEpoch} released | {0, leaseExpiresAt} still held or unowned | {-1} absent. */
export const RELEASE_IF_LAPSED = `
local h, s, at = load(KEYS[1])
if not h then return {-1} end
local own = h[7]
local lease = tonumber(h[10]) or 0
if own == '' then return {0, 0} end
if lease > now_ms() then return {0, lease} end
local ep = tonumber(h[8]) + 1
h[7], h[8], h[10] = '', ep, 0
save(KEYS[1], h, s, at)
return {1, own, ep}
`;

/** KEYS[1] session, KEYS[2] quarantine. ARGV keepMs. Reply 1 moved | 0 absent. Any key type. */
export const QUARANTINE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
`;

/** KEYS[1] pool index, KEYS[2] lease index, KEYS[3] owners, of one bucket (one slot). ARGV now (ms), batch.
 *  Reply {pool-index size, pool-index ids due, lease-index ids due, owners}: what a sweep of the bucket
 *  needs to know, in one call (a quiet bucket needs nothing more but its owner-index audit). Reads only. */
export const SWEEP_PEEK = `
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2]),
  redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2]),
  redis.call('SMEMBERS', KEYS[3])
}
`;

/** KEYS[1] pool index, KEYS[2] owners, of one bucket (one slot). ARGV the bucket's owner-index key prefix
 *  (an owner's index key is the prefix and the owner: same slot, so read though not declared). Reads only.
 *  Reply {pool-index size, owner, owner-index size, owner, owner-index size, ...}. */
export const COUNT_BUCKET = `
local out = {redis.call('ZCARD', KEYS[1])}
for _, owner in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  out[#out + 1] = owner
  out[#out + 1] = redis.call('SCARD', ARGV[1] .. owner)
end
return out
`;

/** KEYS[1] an owner's index, KEYS[2] owners, of one bucket (one slot). ARGV owner. Drops the owner from
 *  `owners` only if its index is empty, in one step: writers add to the index before naming the owner, so
 *  a claim adding meanwhile keeps its owner named (and counted). Reply 1 dropped | 0 kept. */
export const FORGET_OWNER = `
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
return redis.call('SREM', KEYS[2], ARGV[1])
`;

export type LuaReply = null | number | string | LuaReply[];

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** One script: EVALSHA, and EVAL once when the node does not have it yet (NOSCRIPT). */
export class LuaScript {
  readonly source: string;
  readonly sha: string;
  readonly name: string;
  /** `prelude: false` for a script that uses none of the prelude's functions (less to run per call). */
  constructor(name: string, body: string, options: { prelude?: boolean } = {}) {
    this.name = name;
    this.source = options.prelude === false ? body : PRELUDE + body;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  /** EVALSHA only: fails with NOSCRIPT on a node that has not loaded the script yet. */
  send(redis: Cluster | Redis, keys: string[], args: (string | number)[]): Promise<LuaReply> {
    return (
      keys.length === 1 ? redis.evalsha(this.sha, 1, keys[0]!, ...args) : redis.evalsha(this.sha, keys.length, ...keys, ...args)
    ) as Promise<LuaReply>;
  }

  /** EVAL: runs the script and loads it on the node, for a node that answered NOSCRIPT. */
  eval(redis: Cluster, keys: string[], args: (string | number)[]): Promise<LuaReply> {
    return redis.eval(this.source, keys.length, ...keys, ...args) as Promise<LuaReply>;
  }

  /** EVALSHA, and EVAL on NOSCRIPT. */
  run(redis: Cluster, keys: string[], args: (string | number)[]): Promise<LuaReply> {
    return this.send(redis, keys, args).catch((error: unknown) => {
      if (isNoScript(error)) return this.eval(redis, keys, args);
      throw error;
    });
  }
}

export const scripts = {
  create: new LuaScript('create', CREATE),
  import: new LuaScript('import', IMPORT),
  get: new LuaScript('get', GET),
  touch: new LuaScript('touch', TOUCH),
  update: new LuaScript('update', UPDATE),
  writeIfHeader: new LuaScript('writeIfHeader', WRITE_IF_HEADER, { prelude: false }),
  delete: new LuaScript('delete', DELETE),
  claim: new LuaScript('claim', CLAIM),
  renew: new LuaScript('renew', RENEW),
  release: new LuaScript('release', RELEASE),
  move: new LuaScript('move', MOVE),
  migrate: new LuaScript('migrate', MIGRATE),
  setMoving: new LuaScript('setMoving', SET_MOVING),
  releaseIfLapsed: new LuaScript('releaseIfLapsed', RELEASE_IF_LAPSED),
  quarantine: new LuaScript('quarantine', QUARANTINE),
  sweepPeek: new LuaScript('sweepPeek', SWEEP_PEEK, { prelude: false }),
  countBucket: new LuaScript('countBucket', COUNT_BUCKET, { prelude: false }),
  forgetOwner: new LuaScript('forgetOwner', FORGET_OWNER, { prelude: false }),
};
