// The Lua scripts. Each touches the keys of one slot only (KEYS share one hash tag) and uses
// the master's clock (TIME), so leases and timestamps agree whichever client writes.
// docs/store.md specifies each one (arguments, effects, replies) for other implementations.
import { createHash } from 'node:crypto';
import type { Cluster } from 'ioredis';

const PRELUDE = `
local F = {'pool','data','v','ca','la','ttl','anon','own','ep','mov','lease','cs','sv'}
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A record travels as {header, data}: the other twelve fields of F in order joined by a newline
-- (a missing field as ''), then data (nil when missing). Two bulk strings decode far cheaper than 13.
local function pack(r)
  local h = {}
  for i = 1, 13 do
    if i ~= 2 then h[#h + 1] = r[i] or '' end
  end
  return {table.concat(h, '\\n'), r[2]}
end
local function record(key)
  return pack(redis.call('HMGET', key, unpack(F)))
end
`;

/** KEYS[1] session. ARGV pool, data, cs, ttlSeconds, anon, owner, wid, leaseMs, schema.
 *  Reply {1, record} created (or this wid's create already applied) | {0} id taken. */
export const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'wid') == ARGV[7] then return {1, record(KEYS[1])} end
  return {0}
end
local now = now_ms()
local owned = ARGV[6] ~= ''
redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'data', ARGV[2], 'v', 1, 'ca', now, 'la', now, 'ttl', ARGV[4],
  'anon', ARGV[5], 'own', ARGV[6], 'ep', owned and 1 or 0, 'mov', '', 'lease', owned and (now + tonumber(ARGV[8])) or 0,
  'cs', ARGV[3], 'sv', ARGV[9], 'wid', ARGV[7])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 1000)
return {1, record(KEYS[1])}
`;

/** KEYS[1] session. ARGV pool, data, cs, ttlSeconds, anon, owner, wid, leaseMs, schema, version, createdAt.
 *  Like CREATE but with the caller's version and createdAt (a session copied in from elsewhere).
 *  Reply {1, record} imported (or this wid's import already applied) | {0, record} present already. */
export const IMPORT = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'wid') == ARGV[7] then return {1, record(KEYS[1])} end
  return {0, record(KEYS[1])}
end
local now = now_ms()
local owned = ARGV[6] ~= ''
redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'data', ARGV[2], 'v', ARGV[10], 'ca', ARGV[11], 'la', now, 'ttl', ARGV[4],
  'anon', ARGV[5], 'own', ARGV[6], 'ep', owned and 1 or 0, 'mov', '', 'lease', owned and (now + tonumber(ARGV[8])) or 0,
  'cs', ARGV[3], 'sv', ARGV[9], 'wid', ARGV[7])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 1000)
return {1, record(KEYS[1])}
`;

/** KEYS[1] session. ARGV touch ('1' or '0').
 *  Reply record (with la = now when touched) | false when absent. Touch sets la and slides the TTL. */
export const GET = `
local r = redis.call('HMGET', KEYS[1], unpack(F))
if not r[1] and not r[2] and not r[13] then
  if redis.call('EXISTS', KEYS[1]) == 0 then return false end
  return pack(r)
end
if ARGV[1] == '1' then
  local ttl = tonumber(r[6])
  if ttl then
    local now = now_ms()
    redis.call('HSET', KEYS[1], 'la', now)
    redis.call('PEXPIRE', KEYS[1], ttl * 1000)
    r[5] = tostring(now)
  end
end
return pack(r)
`;

/** KEYS[1] session. ARGV granularityMs.
 *  The coarse touch of a get that read the session with a plain HMGET: sets la = now and slides the TTL
 *  only when the last slide (la) is at least min(granularityMs, ttl/10) old on the master's clock.
 *  Reply {1, la, now} touched | {0, la, now} not due (or absent / no ttl: la 0). */
export const TOUCH = `
local r = redis.call('HMGET', KEYS[1], 'la', 'ttl')
local now = now_ms()
local ttl = tonumber(r[2])
if not ttl then return {0, 0, now} end
local la = tonumber(r[1])
if la and now - la < math.min(tonumber(ARGV[1]), ttl * 100) then return {0, la, now} end
redis.call('HSET', KEYS[1], 'la', now)
redis.call('PEXPIRE', KEYS[1], ttl * 1000)
return {1, now, now}
`;

/** KEYS[1] session. ARGV expectedVersion, data, cs, wid, fenced ('1'/'0'), fenceEpoch, hasFenceOwner ('1'/'0'), fenceOwner,
 *  granularityMs.
 *  Reply {1, header} (the record's header; its data is ARGV data) | {-1} missing | {-2, version} conflict
 *  | {-3, owner, epoch} fenced | {-4, movingBy} moving.
 *  Writes v and wid, data and cs unless the stored data is byte-identical, and la + PEXPIRE only when the
 *  last slide is at least min(granularityMs, ttl/10) old (the touch granularity, as for get). */
export const UPDATE = `
local cur = redis.call('HMGET', KEYS[1], 'pool','v','ca','la','ttl','anon','own','ep','mov','lease','cs','sv','wid')
if not cur[2] then return {-1} end
local function header()
  local h = {}
  for i = 1, 12 do h[i] = cur[i] or '' end
  return table.concat(h, '\\n')
end
local v = tonumber(cur[2])
if cur[13] == ARGV[4] and v == tonumber(ARGV[1]) + 1 then return {1, header()} end
if ARGV[5] == '1' then
  if tonumber(cur[8]) ~= tonumber(ARGV[6]) then return {-3, cur[7], cur[8]} end
  if ARGV[7] == '1' and cur[7] ~= ARGV[8] then return {-3, cur[7], cur[8]} end
  if cur[9] and cur[9] ~= '' then return {-4, cur[9]} end
end
if v ~= tonumber(ARGV[1]) then return {-2, cur[2]} end
local set = {'v', v + 1, 'wid', ARGV[4]}
if cur[11] ~= ARGV[3] or redis.call('HGET', KEYS[1], 'data') ~= ARGV[2] then
  set[5], set[6], set[7], set[8] = 'data', ARGV[2], 'cs', ARGV[3]
end
local ttl = tonumber(cur[5])
local la = tonumber(cur[4])
local now = now_ms()
local slide = ttl and (not la or now - la >= math.min(tonumber(ARGV[9]), ttl * 100))
if slide then
  set[#set + 1] = 'la'
  set[#set + 1] = now
end
redis.call('HSET', KEYS[1], unpack(set))
if slide then redis.call('PEXPIRE', KEYS[1], ttl * 1000) end
cur[2] = tostring(v + 1)
cur[11] = ARGV[3]
if slide then cur[4] = tostring(now) end
return {1, header()}
`;

/** KEYS[1] session. Reply {1, pool, owner} deleted | {0}. */
export const DELETE = `
local r = redis.call('HMGET', KEYS[1], 'pool', 'own')
if redis.call('DEL', KEYS[1]) == 0 then return {0} end
return {1, r[1] or '', r[2] or ''}
`;

/** KEYS[1] session. ARGV owner, leaseMs.
 *  Reply {1, epoch, leaseExpiresAt, previousOwner, pool} | {-1} | {-2, owner, epoch, lease} owned | {-4, movingBy}. */
export const CLAIM = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'lease', 'mov', 'pool')
if not r[2] then return {-1} end
local now = now_ms()
local own, ep, lease = r[1] or '', tonumber(r[2]), tonumber(r[3]) or 0
local expires = now + tonumber(ARGV[2])
if own == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease', expires)
  return {1, ep, expires, own, r[5]}
end
if r[4] and r[4] ~= '' then return {-4, r[4]} end
if own ~= '' and lease > now then return {-2, own, ep, lease} end
redis.call('HSET', KEYS[1], 'own', ARGV[1], 'ep', ep + 1, 'lease', expires)
return {1, ep + 1, expires, own, r[5]}
`;

/** KEYS[1] session. ARGV owner, epoch, leaseMs. Reply {1, leaseExpiresAt, pool} | {-1} | {-2, owner, epoch}. */
export const RENEW = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'pool')
if not r[2] then return {-1} end
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return {-2, r[1] or '', r[2]} end
local expires = now_ms() + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease', expires)
return {1, expires, r[3]}
`;

/** KEYS[1] session. ARGV owner, epoch. Reply {1, newEpoch, pool} released | {-1} | {-2, owner, epoch}. */
export const RELEASE = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'pool')
if not r[2] then return {-1} end
if r[1] ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return {-2, r[1] or '', r[2]} end
redis.call('HSET', KEYS[1], 'own', '', 'ep', tonumber(r[2]) + 1, 'lease', 0)
return {1, tonumber(r[2]) + 1, r[3]}
`;

/** KEYS[1] session. ARGV fromOwner ('' = none), fromEpoch, toOwner ('' = none), leaseMs.
 *  Reply {1, newEpoch, pool, leaseExpiresAt} | {-1} | {-2, owner, epoch}. Ignores movingBy: the mover moves. */
export const MOVE = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'pool')
if not r[2] then return {-1} end
local own = r[1] or ''
if own ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return {-2, own, r[2]} end
local ep = tonumber(r[2]) + 1
local lease = 0
if ARGV[3] ~= '' then lease = now_ms() + tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', ep, 'lease', lease)
return {1, ep, r[3], lease}
`;

/** KEYS[1] session. ARGV fromOwner ('' = none), fromEpoch, toOwner ('' = none), leaseMs, pool, migration.
 *  MOVE for a migration: the CAS also checks the pool, and on success clears `mov` when it is `migration`
 *  (one call instead of MOVE plus SET_MOVING ''). A refused move changes nothing (the mark stays).
 *  Reply {1, newEpoch, pool, leaseExpiresAt, previousOwner} | {-1} | {-2, owner, epoch, mov}. */
export const MIGRATE = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'pool', 'mov')
if not r[2] then return {-1} end
local own = r[1] or ''
if own ~= ARGV[1] or tonumber(r[2]) ~= tonumber(ARGV[2]) or r[3] ~= ARGV[5] then return {-2, own, r[2], r[4] or ''} end
local ep = tonumber(r[2]) + 1
local lease = 0
if ARGV[3] ~= '' then lease = now_ms() + tonumber(ARGV[4]) end
if ARGV[6] ~= '' and r[4] == ARGV[6] then
  redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', ep, 'lease', lease, 'mov', '')
else
  redis.call('HSET', KEYS[1], 'own', ARGV[3], 'ep', ep, 'lease', lease)
end
return {1, ep, r[3], lease, own}
`;

/** KEYS[1] session. ARGV migration ('' clears). Reply 1 set | 0 absent. */
export const SET_MOVING = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'mov', ARGV[1])
return 1
`;

/** KEYS[1] session. Reply {1, previousOwner, newEpoch} released | {0, leaseExpiresAt} still held or unowned | {-1} absent. */
export const RELEASE_IF_LAPSED = `
local r = redis.call('HMGET', KEYS[1], 'own', 'ep', 'lease')
if not r[2] then return {-1} end
local own = r[1] or ''
local lease = tonumber(r[3]) or 0
if own == '' then return {0, 0} end
if lease > now_ms() then return {0, lease} end
redis.call('HSET', KEYS[1], 'own', '', 'ep', tonumber(r[2]) + 1, 'lease', 0)
return {1, own, tonumber(r[2]) + 1}
`;

/** KEYS[1] session, KEYS[2] quarantine. ARGV keepMs. Reply 1 moved | 0 absent. Any key type. */
export const QUARANTINE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
`;

/** KEYS[1] workers hash. ARGV worker, draining ('1'/'0'). Reply 1 | 0 absent. */
export const SET_WORKER_DRAINING = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local w = cjson.decode(raw)
w['draining'] = ARGV[2] == '1'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(w))
return 1
`;

/** KEYS[1] workers hash. ARGV worker, now, registration JSON with draining false, the same with draining true,
 *  setDraining ('1'/'0'). Writes the draining-true form when setDraining is '1' or when the current, unexpired
 *  registration is draining (a flag set by someone else survives the heartbeat); else the draining-false form.
 *  Reply 1 when the stored registration is draining, else 0. */
export const REGISTER_WORKER = `
local draining = ARGV[5] == '1'
if not draining then
  local raw = redis.call('HGET', KEYS[1], ARGV[1])
  if raw then
    local ok, w = pcall(cjson.decode, raw)
    if ok and type(w) == 'table' and w['draining'] == true and type(w['expiresAt']) == 'number' and w['expiresAt'] > tonumber(ARGV[2]) then
      draining = true
    end
  end
end
if draining then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 0
`;

/** KEYS[1] workers hash. ARGV now, worker... Deletes each named worker whose registration is still expired. Reply count. */
export const PRUNE_WORKERS = `
local n = 0
local now = tonumber(ARGV[1])
for i = 2, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local ok, w = pcall(cjson.decode, raw)
    if not ok or type(w) ~= 'table' or type(w['expiresAt']) ~= 'number' or w['expiresAt'] <= now then
      n = n + redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
return n
`;

export type LuaReply = null | number | string | LuaReply[];

/** One script: EVALSHA, and EVAL once when the node does not have it yet (NOSCRIPT). */
export class LuaScript {
  readonly source: string;
  readonly sha: string;
  readonly name: string;
  constructor(name: string, body: string) {
    this.name = name;
    this.source = PRELUDE + body;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  run(redis: Cluster, keys: string[], args: (string | number)[]): Promise<LuaReply> {
    const sent = (
      keys.length === 1 ? redis.evalsha(this.sha, 1, keys[0]!, ...args) : redis.evalsha(this.sha, keys.length, ...keys, ...args)
    ) as Promise<LuaReply>;
    return sent.catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.source, keys.length, ...keys, ...args) as Promise<LuaReply>;
      }
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
  delete: new LuaScript('delete', DELETE),
  claim: new LuaScript('claim', CLAIM),
  renew: new LuaScript('renew', RENEW),
  release: new LuaScript('release', RELEASE),
  move: new LuaScript('move', MOVE),
  migrate: new LuaScript('migrate', MIGRATE),
  setMoving: new LuaScript('setMoving', SET_MOVING),
  releaseIfLapsed: new LuaScript('releaseIfLapsed', RELEASE_IF_LAPSED),
  quarantine: new LuaScript('quarantine', QUARANTINE),
  setWorkerDraining: new LuaScript('setWorkerDraining', SET_WORKER_DRAINING),
  registerWorker: new LuaScript('registerWorker', REGISTER_WORKER),
  pruneWorkers: new LuaScript('pruneWorkers', PRUNE_WORKERS),
};
