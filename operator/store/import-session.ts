// Importing a session with its own id, version and creation time: a drain or a mode switch writing a
// worker's local sessions to the store. The index entries come first (as for create), then the IMPORT
// script, which creates the session only when it is absent; an import that found the session present
// takes back the index entries it added that the session does not have. Not journaled in degraded mode:
// an import is a one-off copy its caller can retry.
import { H, SCHEMA_VERSION, encodeData, splitHeader, splitValue } from './codec.ts';
import type { StoreCore } from './core.ts';
import { InternalStoreError, InvalidArgumentError, StoreUnavailableError } from './errors.ts';
import { assertName, assertPoolId, assertSessionId, indexBucket } from './keys.ts';
import { scripts } from './lua.ts';
import { PROVISIONAL_INDEX_MS, type SessionRecords } from './records.ts';
import type { ImportSessionInput, ImportSessionResult, SessionRecord } from './types.ts';

/** SessionStore.importSession's work; `writeId` is the import's write id. */
export async function importSession(
  core: StoreCore,
  records: SessionRecords,
  input: ImportSessionInput,
  writeId: string,
): Promise<ImportSessionResult> {
  if (typeof input !== 'object' || input === null) throw new InvalidArgumentError('importSession needs an input object');
  assertSessionId(input.id);
  assertPoolId(input.pool);
  const owner = input.owner ?? '';
  if (owner !== '') assertName('owner', owner);
  const anonymous = input.anonymous ?? false;
  if (typeof anonymous !== 'boolean') throw new InvalidArgumentError('anonymous must be a boolean');
  if (!Number.isSafeInteger(input.version) || input.version < 1) throw new InvalidArgumentError('version must be a positive integer');
  if (!Number.isSafeInteger(input.createdAt) || input.createdAt < 0)
    throw new InvalidArgumentError('createdAt must be a non-negative integer (ms since the epoch)');
  const ttlSeconds = core.ttlFor(input.pool, anonymous, input.ttlSeconds);
  const { serialized, checksum } = encodeData(input.data, core.settings.maxDataBytes);
  // Not journaled in degraded mode: an import is a one-off copy its caller can retry.
  if (core.degraded.active) throw new StoreUnavailableError(`importSession: Redis is unreachable`);
  const { keys, redis, settings } = core;
  const { id, pool } = input;
  const score = Date.now() + Math.min(ttlSeconds * 1000, PROVISIONAL_INDEX_MS);
  // Indexes first, as for create (NX: an entry the session already has keeps its score).
  const bucket = indexBucket(id);
  await core.exec('import', () =>
    Promise.all([
      redis.zadd(keys.poolIndex(pool, bucket), 'NX', score, id),
      ...(owner ? [redis.sadd(keys.ownerIndex(pool, owner, bucket), id), redis.sadd(keys.owners(pool, bucket), owner)] : []),
    ]),
  );
  const reply = await core.script(
    'import',
    scripts.import,
    [keys.session(pool, id)],
    [
      pool,
      serialized,
      checksum,
      ttlSeconds,
      anonymous ? '1' : '0',
      owner,
      writeId,
      settings.defaultLeaseMs,
      SCHEMA_VERSION,
      input.version,
      input.createdAt,
    ],
  );
  if (!Array.isArray(reply) || (reply[0] !== 1 && reply[0] !== 0)) throw new InternalStoreError(`import: unexpected reply`);
  const created = reply[0] === 1;
  const found = splitValue(typeof reply[1] === 'string' ? reply[1] : null);
  let record: SessionRecord;
  try {
    record = await records.decode(pool, id, found?.header ?? null, found?.data, created ? { serialized, checksum } : undefined);
  } finally {
    if (!created) await undoImportIndexes(core, id, pool, owner, found?.header);
  }
  if (created) {
    if (owner) await core.exec('import', () => redis.zadd(keys.leaseIndex(pool, bucket), Date.now() + settings.defaultLeaseMs, id));
    await core.afterWrite(keys.session(pool, id), id);
    core.logger.debug({ sessionId: id, pool, version: input.version, owner: owner || null }, 'session imported');
  }
  return { created, record };
}

/** An import that found the session present removes the index entries it added that the session does not have. */
async function undoImportIndexes(core: StoreCore, id: string, pool: string, owner: string, header: string | undefined): Promise<void> {
  const parts = splitHeader(header);
  const existingPool = parts?.[H.pool] || null;
  const existingOwner = parts?.[H.own] ?? '';
  const { keys, redis } = core;
  const dropPool = existingPool !== pool;
  const dropOwner = owner !== '' && (existingPool !== pool || existingOwner !== owner);
  if (!dropPool && !dropOwner) return;
  // Best effort: a failure here leaves an index naming too much, never too little.
  await core
    .exec('import', () =>
      Promise.all([
        ...(dropPool ? [redis.zrem(keys.poolIndex(pool, indexBucket(id)), id)] : []),
        ...(dropOwner ? [redis.srem(keys.ownerIndex(pool, owner, indexBucket(id)), id)] : []),
      ]),
    )
    .catch(() => undefined);
}
