// The worker registry: one hash per pool ({pool:P}), a field per worker holding its
// registration as JSON with an expiry. Registering again is the heartbeat; a registration
// not renewed within its TTL is dropped from listings (and deleted lazily). A heartbeat sets
// the draining flag when asked to but never clears it: only setWorkerDraining(false) does.
import type { StoreCore } from './core.ts';
import { InvalidArgumentError, WorkerNotFoundError } from './errors.ts';
import { assertName, assertPoolId } from './keys.ts';
import { LuaScript } from './lua.ts';
import type { WorkerRegistration } from './types.ts';

// The registry's scripts (docs/store.md "Scripts"), beside the code that runs them.
/** KEYS[1] workers hash. ARGV worker, draining ('1'/'0'). Reply 1 | 0 absent. */
const SET_WORKER_DRAINING = `
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
const REGISTER_WORKER = `
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
const PRUNE_WORKERS = `
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

const scripts = {
  setWorkerDraining: new LuaScript('setWorkerDraining', SET_WORKER_DRAINING),
  registerWorker: new LuaScript('registerWorker', REGISTER_WORKER),
  pruneWorkers: new LuaScript('pruneWorkers', PRUNE_WORKERS),
};

interface StoredWorker {
  endpoint: string;
  draining: boolean;
  heartbeatAt: number;
  expiresAt: number;
}

export async function registerWorker(
  core: StoreCore,
  registration: Omit<WorkerRegistration, 'heartbeatAt'>,
  ttlMs = 30_000,
): Promise<void> {
  assertPoolId(registration.pool);
  assertName('worker', registration.worker);
  if (typeof registration.endpoint !== 'string' || !/^[^\s]{1,300}$/.test(registration.endpoint))
    throw new InvalidArgumentError('invalid worker endpoint');
  if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new InvalidArgumentError('heartbeat TTL must be a positive integer (ms)');
  const now = Date.now();
  const stored: StoredWorker = { endpoint: registration.endpoint, draining: false, heartbeatAt: now, expiresAt: now + ttlMs };
  const idle = JSON.stringify(stored);
  stored.draining = true;
  const draining = JSON.stringify(stored);
  // One script: `draining: false` never clears a flag another party (setWorkerDraining) set on the
  // live registration between this worker's read and its heartbeat.
  await core.script(
    'registerWorker',
    scripts.registerWorker,
    [core.keys.workers(registration.pool)],
    [registration.worker, now, idle, draining, registration.draining === true ? '1' : '0'],
  );
}

export async function listWorkers(core: StoreCore, pool: string): Promise<WorkerRegistration[]> {
  assertPoolId(pool);
  const key = core.keys.workers(pool);
  const all = await core.exec('listWorkers', () => core.redis.hgetall(key));
  const now = Date.now();
  const live: WorkerRegistration[] = [];
  const stale: string[] = [];
  for (const [worker, raw] of Object.entries(all)) {
    let stored: StoredWorker | undefined;
    try {
      stored = JSON.parse(raw) as StoredWorker;
    } catch {
      stored = undefined;
    }
    if (!stored || typeof stored.expiresAt !== 'number' || stored.expiresAt <= now) {
      stale.push(worker);
      continue;
    }
    live.push({ pool, worker, endpoint: stored.endpoint, draining: stored.draining === true, heartbeatAt: stored.heartbeatAt });
  }
  if (stale.length > 0) {
    // Only fields still stale are removed: a worker that re-registered meanwhile keeps its entry.
    await core.script('listWorkers', scripts.pruneWorkers, [key], [now, ...stale]);
    core.logger.debug({ pool, workers: stale }, 'expired worker registrations removed');
  }
  return live.sort((a, b) => a.worker.localeCompare(b.worker));
}

export async function setWorkerDraining(core: StoreCore, pool: string, worker: string, draining: boolean): Promise<void> {
  assertPoolId(pool);
  assertName('worker', worker);
  const found = await core.script(
    'setWorkerDraining',
    scripts.setWorkerDraining,
    [core.keys.workers(pool)],
    [worker, draining ? '1' : '0'],
  );
  if (found !== 1) throw new WorkerNotFoundError(`worker ${worker} is not registered in pool ${pool}`);
  core.logger.debug({ pool, worker, draining }, 'worker draining flag set');
}

export async function unregisterWorker(core: StoreCore, pool: string, worker: string): Promise<void> {
  assertPoolId(pool);
  assertName('worker', worker);
  await core.exec('unregisterWorker', () => core.redis.hdel(core.keys.workers(pool), worker));
}
