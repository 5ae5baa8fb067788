// A session's record between Redis and callers: decoding and checking what a reply carries, the
// cache of what this process last saw (degraded-mode reads, and the expected header of an update's
// fast path), quarantine of corrupted sessions, and the steps that write a session in Redis
// (create, update, delete), which the public operations and the degraded-mode replay share.
import {
  CorruptRecord,
  H,
  SCHEMA_VERSION,
  decodeStored,
  splitValue,
  withData,
  withHeaderParts,
  writeSegments,
  type StoredSession,
} from './codec.ts';
import type { StoreCore } from './core.ts';
import type { JournalEntry } from './degraded.ts';
import { FencedError, InternalStoreError, SessionMovingError, SessionNotFoundError, VersionConflictError } from './errors.ts';
import { scripts, type LuaReply } from './lua.ts';
import { indexBucket, keySlot } from './keys.ts';
import type { RetryPolicy } from './retry.ts';
import type { Fence, JsonValue, SessionRecord } from './types.ts';

/** A provisional pool-index score: the sweep re-scores live sessions, so a crash between the
 *  index step and the session step leaves a phantom entry for at most this long. */
export const PROVISIONAL_INDEX_MS = 60_000;

/** Label objects of spo_store_update_paths_total, made once. */
const UPDATE_PATH = { fast: { path: 'fast' }, fallback: { path: 'fallback' }, full: { path: 'full' } } as const;

/** One write of a session's data: the fields of a journal entry that UPDATE needs. */
export type DataWrite = Omit<Extract<JournalEntry, { kind: 'update' }>, 'kind' | 'at'>;

export class SessionRecords {
  readonly core: StoreCore;

  constructor(core: StoreCore) {
    this.core = core;
  }

  /** Caches a session as read or written, under its key (the cache is shared by every pool of this store). */
  remember(pool: string, id: string, stored: StoredSession): void {
    if (this.core.settings.degradedEnabled) this.core.degraded.cache.set(this.core.keys.session(pool, id), stored);
  }

  /** A value a GET read: when it is byte for byte the value cached under `key` (what this process last read
   *  or wrote, already checked: pool, parts, checksum), the cached session is used as it is, and only its
   *  data is parsed (the caller's copy); otherwise decodeValue checks it. */
  readValue(pool: string, id: string, key: string, value: string): SessionRecord | Promise<never> {
    const cached = this.core.degraded.cache.peek(key);
    if (cached !== undefined && cached.header !== '') {
      const { header, serialized } = cached;
      // Compared as slices with ===: V8 compares those as whole buffers, while startsWith and endsWith
      // went character by character (about 5 µs for a 1 KiB value against 0.2 µs, bench/store.bench.ts).
      if (
        value.length === header.length + 1 + serialized.length &&
        value.charCodeAt(header.length) === 10 &&
        value.slice(0, header.length) === header &&
        value.slice(header.length + 1) === serialized
      ) {
        this.core.degraded.cache.set(key, cached); // most recent again
        return withData(cached);
      }
    }
    return this.decodeValue(pool, id, value);
  }

  /** decode for a whole stored value (header, newline, data). */
  decodeValue(pool: string, id: string, value: unknown): SessionRecord | Promise<never> {
    const parts = splitValue(typeof value === 'string' ? value : null);
    if (parts) return this.decode(pool, id, parts.header, parts.data);
    return this.quarantine(pool, id, 'header is malformed');
  }

  /** Decodes a stored session (its header and data as a reply carries them), caches it and returns the
   *  caller's copy; a corrupted one is quarantined (SessionCorruptedError), never returned. `written` is the
   *  data this call just wrote: a reply carrying exactly those bytes and checksum needs no hashing, nor
   *  does data byte-identical to the cached copy; `value`, when given, is that data as a value the record
   *  may carry (the caller's own). Synchronous unless the session is corrupted. */
  decode(
    pool: string,
    id: string,
    header: unknown,
    data: unknown,
    written?: { serialized: string; checksum: string },
    value?: JsonValue,
  ): SessionRecord | Promise<never> {
    try {
      const cached = written ? undefined : this.core.degraded.cache.peek(this.core.keys.session(pool, id));
      const stored = decodeStored(
        id,
        header,
        data,
        written
          ? (d, cs) => cs === written.checksum && d === written.serialized
          : cached
            ? (d, cs) => cached.record.checksum === cs && cached.serialized === d
            : undefined,
      );
      // The key names the pool; a header naming another was not written by this store.
      if (stored.record.pool !== pool) throw new CorruptRecord('pool part names another pool than the key');
      const record = value === undefined ? withData(stored) : { ...stored.record, data: value };
      this.remember(pool, id, stored);
      return record;
    } catch (error) {
      if (error instanceof CorruptRecord) return this.quarantine(pool, id, error.message);
      throw error;
    }
  }

  async quarantine(pool: string, id: string, reason: string): Promise<never> {
    throw await this.core.quarantine(pool, id, reason);
  }

  async createInRedis(
    id: string,
    pool: string,
    serialized: string,
    checksum: string,
    ttlSeconds: number,
    anonymous: boolean,
    owner: string,
    wid: string,
    retry?: RetryPolicy,
  ): Promise<SessionRecord> {
    const { keys, redis, settings } = this.core;
    // Index first: a crash after this step leaves an entry the sweep removes, never a session no index names.
    const score = Date.now() + Math.min(ttlSeconds * 1000, PROVISIONAL_INDEX_MS);
    const bucket = indexBucket(id);
    const poolIndex = keys.poolIndex(pool, bucket);
    // The bucket's keys share a slot: one node, sent directly (core.routed).
    await this.core.exec<unknown>(
      'create',
      () =>
        this.core.routed<unknown>(keySlot(poolIndex), (client) =>
          owner
            ? Promise.all([
                client.zadd(poolIndex, score, id),
                client.sadd(keys.ownerIndex(pool, owner, bucket), id),
                client.sadd(keys.owners(pool, bucket), owner),
              ])
            : client.zadd(poolIndex, score, id),
        ),
      retry,
    );
    const reply = await this.core.script(
      'create',
      scripts.create,
      [keys.session(pool, id)],
      [pool, serialized, checksum, ttlSeconds, anonymous ? '1' : '0', owner, wid, settings.defaultLeaseMs, SCHEMA_VERSION],
      retry,
    );
    if (!Array.isArray(reply) || reply[0] !== 1) throw new InternalStoreError(`create: session id ${id} already taken`);
    // The reply is the header only: the data is what this call wrote (or, a retry, what this write id wrote).
    const record = await this.decode(pool, id, reply[1], serialized, { serialized, checksum });
    if (owner) {
      await this.core.exec('create', () => redis.zadd(keys.leaseIndex(pool, bucket), Date.now() + settings.defaultLeaseMs, id), retry);
    }
    await this.core.afterWrite(keys.session(pool, id), id);
    this.core.logger.debug({ sessionId: id, pool, anonymous, ttlSeconds, owner: owner || null }, 'session created');
    return record;
  }

  /** The cached session an update may offer as the expected stored header (UPDATE's fast path): only when
   *  the header is known and every check UPDATE would make passes against it, so that a byte-identical
   *  stored header means the full script would have accepted the write. */
  fastPathBase(write: Extract<JournalEntry, { kind: 'update' }>): StoredSession | undefined {
    const cached = this.core.degraded.cache.peek(this.core.keys.session(write.pool, write.id));
    if (!cached?.header || cached.record.version !== write.expectedVersion) return undefined;
    const { fence } = write;
    const { epoch, owner, movingBy } = cached.record;
    if (fence && (fence.epoch !== epoch || (fence.owner !== undefined && fence.owner !== owner) || movingBy)) return undefined;
    return cached;
  }

  /** UPDATE for one write (a journal entry's fields). `data`: the caller's value, for the record. `base`:
   *  the cached session whose exact header the fast path expects (see fastPathBase). `sendFailed`: what
   *  becomes of a failure to run the script (not of its refusals). */
  updateInRedis(
    write: DataWrite,
    retry?: RetryPolicy,
    data?: JsonValue,
    base?: StoredSession,
    sendFailed?: (error: unknown) => SessionRecord,
    path: 'full' | 'fallback' = 'full',
  ): Promise<SessionRecord> {
    const key = this.core.keys.session(write.pool, write.id);
    if (base) {
      // The fast path: the new value whole (the base header with v, cs and wid changed, then the data),
      // written only if the stored header is still the base's. Otherwise the full script decides.
      const { beforeV, beforeCs, beforeWid, laAt } = (base.segments ??= writeSegments(base.header));
      const version = String(write.expectedVersion + 1);
      const header = beforeV + version + beforeCs + write.checksum + beforeWid + write.wid;
      return this.core
        .script(
          'update',
          scripts.writeIfHeader,
          [key],
          [
            `${header}\n${write.serialized}`,
            `${base.header}\n`,
            base.record.lastAccessedAt,
            base.record.ttlSeconds,
            this.core.settings.touchGranularityMs,
            laAt < 0 ? -1 : beforeV.length + version.length + laAt,
          ],
          retry,
        )
        .then((written) => {
          if (typeof written === 'number' && written > 0) {
            this.core.metrics.updatePaths.inc(UPDATE_PATH.fast);
            return this.updatedFast(base, header, written, write, data);
          }
          this.core.metrics.updatePaths.inc(UPDATE_PATH.fallback);
          return this.updateInRedis(write, retry, data, undefined, sendFailed, 'fallback');
        }, sendFailed);
    }
    if (path === 'full') this.core.metrics.updatePaths.inc(UPDATE_PATH.full);
    const { pool, id, serialized, checksum, expectedVersion, fence, wid } = write;
    return this.core
      .script(
        'update',
        scripts.update,
        [key],
        [
          expectedVersion,
          serialized,
          checksum,
          wid,
          fence ? '1' : '0',
          fence?.epoch ?? 0,
          fence?.owner !== undefined ? '1' : '0',
          fence?.owner ?? '',
          this.core.settings.touchGranularityMs,
        ],
        retry,
      )
      .then((reply) => this.updated(pool, id, key, reply, serialized, checksum, expectedVersion, fence, data), sendFailed);
  }

  /** The record of an update the fast path applied: the base with the new version, checksum and data, and
   *  the new lastAccessedAt when the write slid the TTL (`written` is then the master's time). */
  private updatedFast(
    base: StoredSession,
    header: string,
    written: number,
    write: DataWrite,
    data: JsonValue | undefined,
  ): SessionRecord | Promise<SessionRecord> {
    const slid = written > 1;
    const stored: StoredSession = {
      record: {
        ...base.record,
        version: write.expectedVersion + 1,
        checksum: write.checksum,
        lastAccessedAt: slid ? written : base.record.lastAccessedAt,
      },
      serialized: write.serialized,
      leaseExpiresAt: base.leaseExpiresAt,
      header: slid ? withHeaderParts(header, [[H.la, String(written)]]) : header,
      segments: slid ? undefined : base.segments,
    };
    this.remember(write.pool, write.id, stored);
    const record = data === undefined ? withData(stored) : { ...stored.record, data };
    if (this.core.settings.durability !== 'replica') return record;
    return this.core.afterWrite(this.core.keys.session(write.pool, write.id), write.id).then(() => record);
  }

  /** The outcome of the update script: the record written, or the typed refusal. */
  updated(
    pool: string,
    id: string,
    key: string,
    reply: LuaReply,
    serialized: string,
    checksum: string,
    expectedVersion: number,
    fence: Fence | undefined,
    data: JsonValue | undefined,
  ): SessionRecord | Promise<SessionRecord> {
    const [status, a, b] = Array.isArray(reply) ? reply : [];
    const conflict = (kind: string) => this.core.metrics.conflicts.inc({ op: 'update', kind });
    switch (status) {
      case 1: {
        // The reply is the header only: the data is what this call wrote, and the record carries the
        // caller's own data value (validated as JSON by encodeData) rather than a parsed copy of it.
        const record = this.decode(pool, id, a, serialized, { serialized, checksum }, data);
        if (record instanceof Promise || this.core.settings.durability !== 'replica') return record;
        return this.core.afterWrite(key, id).then(() => record);
      }
      case -1:
        throw new SessionNotFoundError(id);
      case -2:
        conflict('version');
        throw new VersionConflictError(id, expectedVersion, Number(a));
      case -3:
        conflict('fenced');
        this.core.logger.debug({ sessionId: id, fenceEpoch: fence?.epoch, epoch: Number(b) }, 'fenced write refused');
        throw new FencedError(id, a ? String(a) : null, Number(b));
      case -4:
        conflict('moving');
        throw new SessionMovingError(id, String(a));
      default:
        throw new Error(`update: unexpected reply ${JSON.stringify(reply)}`);
    }
  }

  async deleteInRedis(pool: string, id: string, retry?: RetryPolicy): Promise<boolean> {
    const { keys, redis } = this.core;
    const key = keys.session(pool, id);
    const reply = await this.core.script('delete', scripts.delete, [key], [], retry);
    this.core.degraded.cache.delete(key);
    if (!Array.isArray(reply) || reply[0] !== 1) return false;
    const owner = String(reply[2] ?? '');
    await this.core.afterWrite(key, id);
    // Session first, then indexes: a crash in between leaves an entry the sweep removes.
    const bucket = indexBucket(id);
    await this.core.exec<unknown>(
      'delete',
      () =>
        owner
          ? Promise.all([
              redis.zrem(keys.poolIndex(pool, bucket), id),
              redis.srem(keys.ownerIndex(pool, owner, bucket), id),
              redis.zrem(keys.leaseIndex(pool, bucket), id),
            ])
          : redis.zrem(keys.poolIndex(pool, bucket), id),
      retry,
    );
    this.core.logger.debug({ sessionId: id, pool }, 'session deleted');
    return true;
  }
}
