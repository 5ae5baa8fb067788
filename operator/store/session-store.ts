// The session store: composes the key layout, scripts, codec, retries, degraded mode, records
// (decoding, the cache and the write steps in Redis: records.ts), imports (import-session.ts),
// degraded mode (degraded-mode.ts), ownership, worker registry and sweep into the SessionStore contract of types.ts. This file
// validates input, chooses between Redis and the degraded-mode journal, and counts every operation.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { H, encodeData, withData, withHeaderParts } from './codec.ts';
import { StoreCore } from './core.ts';
import { SessionRecords } from './records.ts';
import type { JournalEntry } from './degraded.ts';
import { DegradedMode, ONCE } from './degraded-mode.ts';
import {
  AnonymousSessionError,
  InvalidArgumentError,
  InvalidNameError,
  InvalidTtlError,
  SessionCorruptedError,
  SessionNotFoundError,
  SessionStoreError,
  StoreUnavailableError,
  TooManyConflictsError,
  VersionConflictError,
  InvalidSessionDataError,
  InvalidSessionIdError,
  SessionTooLargeError,
} from './errors.ts';
import { backoffDelay } from '../kube/clock.ts';
import { assertName, assertPoolId, assertSessionId, keySlot, newSessionId } from './keys.ts';
import { countOwnerIndexes, countPoolIndex, listOwnerIndex, listPoolIndex } from './indexes.ts';
import { scripts } from './lua.ts';
import type { SessionStoreOptions } from './options.ts';
import * as idempotency from './idempotency.ts';
import { importSession } from './import-session.ts';
import * as ownership from './ownership.ts';
import * as requestRecords from './request-records.ts';
import { rejected, type RetryPolicy } from './retry.ts';
import { sweepPool } from './sweep.ts';
import * as workers from './workers.ts';
import type {
  CreateSessionInput,
  Fence,
  ImportSessionInput,
  ImportSessionResult,
  JsonValue,
  Lease,
  ListPage,
  MutateOptions,
  OwnerMove,
  OwnerMoveOutcome,
  OwnerState,
  PoolScope,
  RequestClaim,
  RequestRecordRef,
  SessionRecord,
  SessionStore,
  SessionStoreStats,
  SweepResult,
  UpdateOptions,
  WorkerRegistration,
} from './types.ts';

const INPUT_ERRORS = [
  InvalidTtlError,
  InvalidNameError,
  InvalidSessionDataError,
  SessionTooLargeError,
  InvalidArgumentError,
  InvalidSessionIdError,
];

// Write ids only need to differ between writes of one session: a random per-process prefix (96 bits)
// and a counter, instead of a random draw per write.
/** mutate's wait between conflicting attempts: short, since a conflict means the session just changed. */
const MUTATE_BACKOFF = { baseMs: 2, maxMs: 50, jitter: 'full' } as const;

const WRITE_ID_PREFIX = randomBytes(12).toString('base64url');
let writeIdCounter = 0;
const newWriteId = () => WRITE_ID_PREFIX + (writeIdCounter++).toString(36);

/** The `{ pool }` every operation on one session takes (the pool is part of the session's key). */
function assertPoolOption(options: unknown): asserts options is { pool: string } {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options with the session pool are required');
  assertPoolId((options as { pool?: unknown }).pool);
}

function assertFence(fence: Fence | undefined): void {
  if (fence === undefined) return;
  if (!Number.isInteger(fence.epoch) || fence.epoch < 0) throw new InvalidArgumentError(`fence.epoch must be a non-negative integer`);
  if (fence.owner !== undefined) assertName('owner', fence.owner);
}

/** The checks update and updateRecorded share: a session id, and options with pool, expectedVersion and fence. */
function checkUpdate(id: string, options: UpdateOptions): UpdateOptions {
  assertSessionId(id);
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('update needs options with pool and expectedVersion');
  assertPoolOption(options);
  if (!Number.isInteger(options.expectedVersion) || options.expectedVersion < 1)
    throw new InvalidArgumentError('expectedVersion must be a positive integer');
  assertFence(options.fence);
  return options;
}

export class RedisSessionStore implements SessionStore {
  readonly core: StoreCore;
  /** Decoding, the cache, quarantine and the write steps in Redis (records.ts). */
  readonly records: SessionRecords;
  /** Degraded mode: the journal's writes, the probe and the replay (degraded-mode.ts). */
  readonly degradedMode: DegradedMode;

  constructor(options: SessionStoreOptions) {
    this.core = new StoreCore(options);
    this.records = new SessionRecords(this.core);
    this.degradedMode = new DegradedMode(this.core, this.records, options.onReplayConflict);
    this.core.onUnreachable = (error) => this.degradedMode.enter(error);
  }

  // ---- instrumentation -------------------------------------------------------------------

  /** Per-op label objects, made once: the hot path allocates no label object. */
  private readonly opLabels = new Map<string, { op: { op: string }; ok: { op: string; result: string } }>();

  private op<T>(op: string, fn: () => Promise<T>): Promise<T> {
    let labels = this.opLabels.get(op);
    if (!labels) {
      labels = { op: { op }, ok: { op, result: 'ok' } };
      this.opLabels.set(op, labels);
    }
    const { metrics } = this.core;
    const started = performance.now();
    let pending: Promise<T>;
    try {
      pending = fn();
    } catch (error) {
      pending = rejected(error);
    }
    const done = labels;
    return pending.then(
      (result) => {
        metrics.duration.observe(done.op, (performance.now() - started) / 1000);
        metrics.operations.inc(done.ok);
        return result;
      },
      (error: unknown) => {
        metrics.duration.observe(done.op, (performance.now() - started) / 1000);
        metrics.operations.inc({ op, result: error instanceof SessionStoreError ? error.code : 'ERROR' });
        throw error;
      },
    );
  }

  /** Replays the journal, then checks every master; leaves degraded mode when all of it worked. */
  probe(): Promise<boolean> {
    return this.degradedMode.probe();
  }

  // ---- sessions --------------------------------------------------------------------------------

  create(input: CreateSessionInput): Promise<SessionRecord> {
    return this.op('create', async () => {
      if (typeof input !== 'object' || input === null) throw new InvalidArgumentError('create needs an input object');
      assertPoolId(input.pool);
      if (input.owner !== undefined) assertName('owner', input.owner);
      const anonymous = input.anonymous ?? false;
      if (typeof anonymous !== 'boolean') throw new InvalidArgumentError('anonymous must be a boolean');
      const ttlSeconds = this.core.ttlFor(input.pool, anonymous, input.ttlSeconds);
      const { serialized, checksum } = encodeData(input.data === undefined ? {} : input.data, this.core.settings.maxDataBytes);
      const id = newSessionId();
      const wid = newWriteId();
      const owner = input.owner ?? '';
      if (this.core.degraded.active)
        return this.degradedMode.create({
          kind: 'create',
          id,
          pool: input.pool,
          serialized,
          checksum,
          ttlSeconds,
          anonymous,
          owner,
          wid,
          at: Date.now(),
        });
      try {
        return await this.records.createInRedis(id, input.pool, serialized, checksum, ttlSeconds, anonymous, owner, wid);
      } catch (error) {
        if (error instanceof StoreUnavailableError && this.core.degraded.active) {
          return this.degradedMode.create({
            kind: 'create',
            id,
            pool: input.pool,
            serialized,
            checksum,
            ttlSeconds,
            anonymous,
            owner,
            wid,
            at: Date.now(),
          });
        }
        throw error;
      }
    });
  }

  importSession(input: ImportSessionInput): Promise<ImportSessionResult> {
    return this.op('import', () => importSession(this.core, this.records, input, newWriteId()));
  }

  get(id: string, options: { pool: string; touch?: boolean }): Promise<SessionRecord | null> {
    return this.op('get', () => {
      assertPoolOption(options);
      return this.read(options.pool, id, options.touch !== false);
    });
  }

  /** get without its metrics. The usual case is one GET and a decode, with no async frame; a touch
   *  follows only when one is due. A session of another pool has another key: it reads as absent. */
  private read(pool: string, id: string, touch: boolean): Promise<SessionRecord | null> {
    assertSessionId(id);
    const { degraded, settings, keys } = this.core;
    const key = keys.session(pool, id);
    if (degraded.active) {
      const cached = degraded.cache.get(key);
      if (cached) return Promise.resolve(withData(cached));
    }
    const retry = degraded.active ? ONCE : undefined;
    const failed = (error: unknown): SessionRecord | Promise<never> => {
      if (error instanceof StoreUnavailableError && degraded.active)
        return withData(this.degradedMode.cachedOrUnavailable(pool, id, 'get'));
      if (error instanceof Error && error.message.startsWith('WRONGTYPE')) return this.records.quarantine(pool, id, 'not a string');
      throw error;
    };
    // Granularity 0: every get touches, in one script.
    if (touch && settings.touchGranularityMs === 0) return this.getByScript(pool, id, key, true, retry).catch(failed);
    const slot = keySlot(key);
    return this.core
      .exec('get', () => this.core.routed(slot, (client) => client.get(key)), retry)
      .then((value) => {
        if (value === null) {
          degraded.cache.delete(key);
          return null;
        }
        const record = this.records.readValue(pool, id, key, value);
        if (record instanceof Promise) return record;
        if (!touch || !this.touchDue(record)) return record;
        return this.touch(id, key, record, retry).then(() => record, failed);
      }, failed);
  }

  private async getByScript(
    pool: string,
    id: string,
    key: string,
    touch: boolean,
    retry: RetryPolicy | undefined,
  ): Promise<SessionRecord | null> {
    const reply = await this.core.script('get', scripts.get, [key], [touch ? '1' : '0'], retry);
    if (reply === null) {
      this.core.degraded.cache.delete(key);
      return null;
    }
    return this.records.decodeValue(pool, id, reply);
  }

  /** True when the last slide (lastAccessedAt, master clock) looks at least min(granularity, TTL/10) old.
   *  The TOUCH script decides again on the master's own clock; this only saves the call when it is not due. */
  private touchDue(record: SessionRecord): boolean {
    const granularity = Math.min(this.core.settings.touchGranularityMs, record.ttlSeconds * 100);
    return Date.now() + this.core.clockOffsetMs - record.lastAccessedAt >= granularity;
  }

  private async touch(id: string, key: string, record: SessionRecord, retry: RetryPolicy | undefined): Promise<void> {
    const reply = await this.core.script('get', scripts.touch, [key], [this.core.settings.touchGranularityMs], retry);
    if (!Array.isArray(reply)) return;
    const [, la, now] = reply;
    if (typeof now === 'number') this.core.clockOffsetMs = now - Date.now();
    if (typeof la === 'number' && la > record.lastAccessedAt) {
      record.lastAccessedAt = la;
      const cached = this.core.degraded.cache.peek(key);
      if (cached) {
        cached.record = { ...cached.record, lastAccessedAt: la };
        if (cached.header) cached.header = withHeaderParts(cached.header, [[H.la, String(la)]]);
        cached.segments = undefined;
      }
    }
  }

  exists(id: string, options: { pool: string }): Promise<boolean> {
    return this.op('exists', async () => {
      assertPoolOption(options);
      assertSessionId(id);
      const { pool } = options;
      const { degraded } = this.core;
      const key = this.core.keys.session(pool, id);
      if (degraded.active && degraded.cache.get(key)) return true;
      try {
        return (await this.core.exec('exists', () => this.core.redis.exists(key), degraded.active ? ONCE : undefined)) === 1;
      } catch (error) {
        if (error instanceof StoreUnavailableError && degraded.active)
          return this.degradedMode.cachedOrUnavailable(pool, id, 'exists') !== undefined;
        throw error;
      }
    });
  }

  update(id: string, data: JsonValue, options: UpdateOptions): Promise<SessionRecord> {
    // No async frame on the usual path: validation, one script, a record built from what was sent.
    return this.op('update', () => {
      const { pool, expectedVersion, fence } = checkUpdate(id, options);
      const { serialized, checksum } = encodeData(data, this.core.settings.maxDataBytes);
      const entry: Extract<JournalEntry, { kind: 'update' }> = {
        kind: 'update',
        id,
        pool,
        serialized,
        checksum,
        expectedVersion,
        wid: newWriteId(),
        at: Date.now(),
      };
      if (fence) entry.fence = fence;
      if (this.core.degraded.active) return Promise.resolve(this.degradedMode.update(entry));
      return this.records.updateInRedis(entry, undefined, data, this.records.fastPathBase(entry), (error: unknown) => {
        // The outcome is unknown; the journal replays it with the same write id, so it applies at most once.
        if (error instanceof StoreUnavailableError && this.core.degraded.active) return this.degradedMode.update(entry);
        throw error;
      });
    });
  }

  /** update, and in the same script the request's idempotency record (docs/activation.md). Not in degraded
   *  mode: a journaled write could not record atomically, so it is refused as unavailable. */
  updateRecorded(id: string, data: JsonValue, options: UpdateOptions, record: idempotency.IdempotencyRecord): Promise<SessionRecord> {
    return this.op('update', () => {
      const { pool, expectedVersion, fence } = checkUpdate(id, options);
      if (this.core.degraded.active) throw new StoreUnavailableError('the session store is unavailable: cannot record an idempotent write');
      const { serialized, checksum } = encodeData(data, this.core.settings.maxDataBytes);
      const key = this.core.keys.session(pool, id);
      return this.core
        .script(
          'update',
          idempotency.idempotencyScripts.updateRecorded,
          [key, ...idempotency.recordKeysOf(key)],
          [
            expectedVersion,
            serialized,
            checksum,
            newWriteId(),
            fence ? '1' : '0',
            fence?.epoch ?? 0,
            fence?.owner !== undefined ? '1' : '0',
            fence?.owner ?? '',
            this.core.settings.touchGranularityMs,
            ...idempotency.recordArgs(record),
          ],
        )
        .then((reply) => this.records.updated(pool, id, key, reply, serialized, checksum, expectedVersion, fence, data));
    });
  }

  /** Records the outcome of a request that wrote nothing, while the session is still at the fence's owner and epoch. */
  recordOutcome(
    id: string,
    fence: { owner: string; epoch: number },
    record: idempotency.IdempotencyRecord,
    options: PoolScope,
  ): Promise<boolean> {
    return this.op('recordOutcome', () => idempotency.recordFenced(this.core, options.pool, id, fence, record));
  }

  /** The reply recorded for an Idempotency-Key of a session, if one is kept. */
  recordedReply(id: string, key: string, options: PoolScope & { keepMs?: number }): Promise<idempotency.RecordedReply | undefined> {
    return this.op('recordedReply', () => idempotency.recordedReply(this.core, options.pool, id, key, options.keepMs));
  }

  /** Claims an Idempotency-Key of a create or an anonymous execute (request-records.ts). */
  claimRequest(ref: RequestRecordRef, pendingMs: number): Promise<RequestClaim> {
    return this.op('claimRequest', () => requestRecords.claimRequest(this.core, ref, pendingMs));
  }

  /** Records the reply of a claimed request; false when its claim was lost. */
  completeRequest(ref: RequestRecordRef, reply: idempotency.RecordedReply, keepMs?: number): Promise<boolean> {
    return this.op('completeRequest', () => requestRecords.completeRequest(this.core, ref, reply, keepMs));
  }

  /** Drops the claim of a request that failed. */
  abandonRequest(ref: RequestRecordRef): Promise<void> {
    return this.op('abandonRequest', () => requestRecords.abandonRequest(this.core, ref));
  }

  /** Drops a session's idempotency records. */
  forgetRecords(id: string, options: PoolScope): Promise<void> {
    return this.op('forgetRecords', () => idempotency.forgetRecords(this.core, options.pool, id));
  }

  mutate(
    id: string,
    change: (data: JsonValue, record: SessionRecord) => JsonValue | Promise<JsonValue>,
    options: MutateOptions,
  ): Promise<SessionRecord> {
    return this.op('mutate', async () => {
      assertPoolOption(options);
      const { pool } = options;
      const maxAttempts = options.maxAttempts ?? 10;
      if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new InvalidArgumentError('maxAttempts must be a positive integer');
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const record = await this.get(id, { pool, touch: false });
        if (!record) throw new SessionNotFoundError(id);
        const next = await change(record.data, record);
        try {
          return await this.update(id, next, { pool, expectedVersion: record.version, ...(options.fence ? { fence: options.fence } : {}) });
        } catch (error) {
          if (!(error instanceof VersionConflictError)) throw error;
          await sleep(backoffDelay(attempt, MUTATE_BACKOFF));
        }
      }
      throw new TooManyConflictsError(id, maxAttempts);
    });
  }

  delete(id: string, options: { pool: string }): Promise<boolean> {
    return this.op('delete', async () => {
      assertPoolOption(options);
      assertSessionId(id);
      const { pool } = options;
      const { degraded } = this.core;
      if (degraded.active) return this.degradedMode.delete(pool, id);
      try {
        return await this.records.deleteInRedis(pool, id);
      } catch (error) {
        if (error instanceof StoreUnavailableError && degraded.active) return this.degradedMode.delete(pool, id);
        throw error;
      }
    });
  }

  count(pool: string): Promise<number> {
    return this.op('count', async () => {
      assertPoolId(pool);
      const n = await countPoolIndex(this.core, pool);
      this.core.metrics.sessions.set({ pool }, n);
      return n;
    });
  }

  list(pool: string, options: { cursor?: string | null; limit?: number } = {}): Promise<ListPage> {
    return this.op('list', async () => {
      assertPoolId(pool);
      const limit = options.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw new InvalidArgumentError('limit must be an integer from 1 to 10000');
      return listPoolIndex(this.core, pool, options.cursor ?? null, limit);
    });
  }

  async withAnonymousSession<T>(
    pool: string,
    work: (session: SessionRecord) => Promise<T>,
    options: { ttlSeconds?: number; owner?: string } = {},
  ): Promise<T> {
    let session: SessionRecord;
    try {
      session = await this.create({ pool, anonymous: true, ...options });
    } catch (error) {
      if (INPUT_ERRORS.some((type) => error instanceof type)) throw error;
      throw new AnonymousSessionError(
        `could not create an anonymous session in pool ${pool}: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      );
    }
    try {
      return await work(session);
    } finally {
      try {
        await this.delete(session.id, { pool });
      } catch (error) {
        // Its TTL (anonymous: short) and the sweep remove it anyway.
        this.core.logger.warn(
          { sessionId: session.id, err: error instanceof Error ? error.message : String(error) },
          'anonymous session not deleted; left to its TTL',
        );
      }
    }
  }

  // ---- ownership, workers, sweep ---------------------------------------------------------------

  claim(id: string, owner: string, options: { pool: string; leaseMs?: number }): Promise<Lease> {
    return this.op('claim', () => {
      assertPoolOption(options);
      return ownership.claim(this.core, options.pool, id, owner, options.leaseMs);
    });
  }
  renew(lease: Lease, leaseMs?: number): Promise<Lease> {
    return this.op('renew', () => ownership.renew(this.core, lease, leaseMs));
  }
  release(lease: Lease): Promise<void> {
    return this.op('release', () => ownership.release(this.core, lease));
  }
  moveOwners(pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]> {
    return this.op('moveOwners', () => ownership.moveOwners(this.core, pool, moves));
  }
  setMoving(pool: string, sessionIds: string[], migration: string | null): Promise<void> {
    return this.op('setMoving', () => ownership.setMoving(this.core, pool, sessionIds, migration));
  }
  /** Owner, epoch, moving mark and pool of many sessions (one HGET of the header each, pipelined); absent ones are left out.
   *  A session whose value is unreadable is read with get, which quarantines a corrupted one (then absent). */
  readOwners(pool: string, sessionIds: string[]): Promise<Map<string, OwnerState>> {
    return this.op('readOwners', async () => {
      const { states, suspect } = await ownership.readOwners(this.core, pool, sessionIds);
      for (const id of suspect) {
        try {
          const record = await this.get(id, { pool, touch: false });
          if (record)
            states.set(id, { sessionId: id, pool: record.pool, owner: record.owner, epoch: record.epoch, movingBy: record.movingBy });
        } catch (error) {
          if (!(error instanceof SessionCorruptedError)) throw error;
        }
      }
      return states;
    });
  }
  migrateOwners(pool: string, moves: OwnerMove[], migration: string): Promise<OwnerMoveOutcome[]> {
    return this.op('migrateOwners', () => ownership.migrateOwners(this.core, pool, moves, migration));
  }
  listByOwner(pool: string, owner: string): Promise<string[]> {
    return this.op('listByOwner', () => listOwnerIndex(this.core, pool, owner));
  }
  countByOwner(pool: string): Promise<Map<string, number>> {
    return this.op('countByOwner', () => countOwnerIndexes(this.core, pool));
  }
  registerWorker(registration: Omit<WorkerRegistration, 'heartbeatAt'>, ttlMs?: number): Promise<void> {
    return this.op('registerWorker', () => workers.registerWorker(this.core, registration, ttlMs));
  }
  listWorkers(pool: string): Promise<WorkerRegistration[]> {
    return this.op('listWorkers', () => workers.listWorkers(this.core, pool));
  }
  setWorkerDraining(pool: string, worker: string, draining: boolean): Promise<void> {
    return this.op('setWorkerDraining', () => workers.setWorkerDraining(this.core, pool, worker, draining));
  }
  unregisterWorker(pool: string, worker: string): Promise<void> {
    return this.op('unregisterWorker', () => workers.unregisterWorker(this.core, pool, worker));
  }
  sweep(pool: string): Promise<SweepResult> {
    return this.op('sweep', () => sweepPool(this.core, pool));
  }

  stats(): SessionStoreStats {
    const { degraded } = this.core;
    return {
      degraded: degraded.active,
      queuedWrites: degraded.journal.length,
      cachedSessions: degraded.cache.size,
      replayedWrites: degraded.replayed,
      replayConflicts: degraded.replayConflicts,
    };
  }

  async close(): Promise<void> {
    if (this.core.closed) return;
    this.core.closed = true;
    this.degradedMode.close();
    if (this.core.degraded.journal.length > 0) {
      this.core.logger.warn(
        { queuedWrites: this.core.degraded.journal.length },
        'closing with unreplayed degraded-mode writes: they are lost',
      );
    }
    if (this.core.ownsClient) {
      try {
        await this.core.redis.quit();
      } catch {
        this.core.redis.disconnect();
      }
    }
  }
}
