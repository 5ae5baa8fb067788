// Records of keyed requests that belong to no session yet: a create (`POST /v1/sessions`) and an
// anonymous execute (`POST /v1/execute`) sent with an Idempotency-Key (docs/activation.md). A session's
// own records (idempotency.ts) cannot hold them: a create has no session until it runs, and an
// anonymous execute's temporary session is gone when it ends. Any worker may receive such a request or
// its retry, so the record is claimed before the request runs: a retry meanwhile learns that it is in
// progress, and one after it gets the recorded reply.
//
// One string per (pool, scope, key): `<prefix>:s:{<pool>|<rid>}:r`, where rid is 22 characters of
// sha-256(scope, key), shaped like a session id, so the record has the pool's session-key prefix and
// pattern (acl.ts) and spreads over the cluster's slots. Its value is `p|<fingerprint>|<claimant>`
// while the request runs (expiring after `pendingMs`: a claimant that died frees the key) and
// `r|<fingerprint>|<reply JSON>` once it succeeded (expiring after `keepMs`). The fingerprint is a hash
// of the request: a key sent again with another request is refused, not answered with another's reply.
import { createHash } from 'node:crypto';
import type { StoreCore } from './core.ts';
import { InvalidArgumentError } from './errors.ts';
import { assertIdempotencyKey, IDEMPOTENCY_DEFAULTS } from './idempotency.ts';
import { assertName, assertPoolId } from './keys.ts';
import { LuaScript } from './lua.ts';
import type { RecordedReply, RequestClaim, RequestRecordRef, RequestScope } from './types.ts';

export type { RequestClaim, RequestRecordRef, RequestScope };

const SCOPES: ReadonlySet<string> = new Set<RequestScope>(['create', 'execute']);
const FINGERPRINT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The record's key: the pool's session-key shape with an id derived from the scope and the key, and `:r`. */
export function requestRecordKey(core: StoreCore, pool: string, scope: RequestScope, key: string): string {
  const rid = createHash('sha256').update(`${scope}\n${key}`).digest('base64url').slice(0, 22);
  return requestRecordKeyOf(core.keys.session(pool, rid));
}

/** The record key beside a session-shaped key (also the ACL pattern's shape). */
export function requestRecordKeyOf(sessionShapedKey: string): string {
  return `${sessionShapedKey}:r`;
}

/** A fingerprint of a request (its route and body), as claims compare it. */
export function requestFingerprint(route: string, body: string): string {
  return createHash('sha256').update(`${route}\n${body}`).digest('base64url').slice(0, 32);
}

// KEYS[1] record. ARGV fingerprint, claimant, pendingMs.
// Reply {1} claimed (also: already claimed by this claimant, a retried call) | {2} pending | {3} another
// request's key | {4, reply JSON} recorded.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'p|' .. ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
  return {1}
end
local kind, rest = string.sub(v, 1, 1), string.sub(v, 3)
local fp = string.sub(rest, 1, #ARGV[1])
if fp ~= ARGV[1] or string.sub(rest, #ARGV[1] + 1, #ARGV[1] + 1) ~= '|' then return {3} end
local tail = string.sub(rest, #ARGV[1] + 2)
if kind == 'r' then return {4, tail} end
if tail == ARGV[2] then return {1} end
return {2}
`;

// KEYS[1] record. ARGV fingerprint, claimant, reply JSON, keepMs.
// Reply 1 recorded (or already recorded by this claimant's earlier attempt) | 0 the claim was lost (expired, taken).
const COMPLETE = `
local v = redis.call('GET', KEYS[1])
local mine = 'p|' .. ARGV[1] .. '|' .. ARGV[2]
local done = 'r|' .. ARGV[1] .. '|' .. ARGV[3]
if v == mine then
  redis.call('SET', KEYS[1], done, 'PX', ARGV[4])
  return 1
end
if v == done then return 1 end
return 0
`;

// KEYS[1] record. ARGV fingerprint, claimant. Drops this claimant's claim (the request failed: a retry runs it again).
const ABANDON = `
if redis.call('GET', KEYS[1]) == 'p|' .. ARGV[1] .. '|' .. ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const requestScripts = {
  claim: new LuaScript('claimRequest', CLAIM, { prelude: false }),
  complete: new LuaScript('completeRequest', COMPLETE, { prelude: false }),
  abandon: new LuaScript('abandonRequest', ABANDON, { prelude: false }),
};

/** The record's key of a checked ref (bad input is refused before anything is sent). */
function recordKeyOf(core: StoreCore, ref: RequestRecordRef): string {
  assertPoolId(ref.pool);
  if (!SCOPES.has(ref.scope)) throw new InvalidArgumentError(`unknown request scope ${JSON.stringify(ref.scope)}`);
  assertIdempotencyKey(ref.key);
  if (!FINGERPRINT_PATTERN.test(ref.fingerprint)) throw new InvalidArgumentError('a request fingerprint is 1 to 64 base64url characters');
  assertName('claimant', ref.claimant);
  return requestRecordKey(core, ref.pool, ref.scope, ref.key);
}

function positiveMs(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1000) throw new InvalidArgumentError(`${name} must be an integer of at least 1000`);
  return value;
}

/** Claims the key for a request, or says who has it. `pendingMs`: how long a claim holds if never completed. */
export async function claimRequest(core: StoreCore, ref: RequestRecordRef, pendingMs: number): Promise<RequestClaim> {
  const key = recordKeyOf(core, ref);
  const reply = await core.script(
    'claimRequest',
    requestScripts.claim,
    [key],
    [ref.fingerprint, ref.claimant, positiveMs('pendingMs', pendingMs)],
  );
  const [code, recorded] = Array.isArray(reply) ? reply : [];
  if (code === 1) return { state: 'claimed' };
  if (code === 2) return { state: 'pending' };
  if (code === 4 && typeof recorded === 'string') {
    try {
      return { state: 'recorded', reply: JSON.parse(recorded) as RecordedReply };
    } catch {
      // Not ours to read: treated as another request's key, never as a reply.
    }
  }
  return { state: 'mismatch' };
}

/** Records the successful reply of a claimed request for `keepMs`. False when the claim was lost meanwhile. */
export async function completeRequest(
  core: StoreCore,
  ref: RequestRecordRef,
  reply: RecordedReply,
  keepMs: number = IDEMPOTENCY_DEFAULTS.keepMs,
): Promise<boolean> {
  const key = recordKeyOf(core, ref);
  const done = await core.script(
    'completeRequest',
    requestScripts.complete,
    [key],
    [ref.fingerprint, ref.claimant, JSON.stringify(reply), positiveMs('keepMs', keepMs)],
  );
  return done === 1;
}

/** Drops a claim whose request failed, so that a retry runs it again. */
export async function abandonRequest(core: StoreCore, ref: RequestRecordRef): Promise<void> {
  const key = recordKeyOf(core, ref);
  await core.script('abandonRequest', requestScripts.abandon, [key], [ref.fingerprint, ref.claimant]);
}
