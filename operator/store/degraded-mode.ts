// Degraded mode's behaviour (docs/store.md "Degraded mode"): entering it when Redis is unreachable,
// answering writes from the local cache into the journal (degraded.ts holds both), the probe that
// replays the journal in order and leaves the mode once every master answers, and the replay's
// refusals, which are never silent (a metric, a warning and the onReplayConflict callback).
import { withData, type StoredSession } from './codec.ts';
import type { StoreCore } from './core.ts';
import type { CachedSession, JournalEntry } from './degraded.ts';
import {
  FencedError,
  SessionMovingError,
  SessionNotFoundError,
  SessionStoreError,
  StoreUnavailableError,
  VersionConflictError,
} from './errors.ts';
import type { SessionStoreOptions } from './options.ts';
import type { SessionRecords } from './records.ts';
import type { RetryPolicy } from './retry.ts';
import type { SessionRecord } from './types.ts';

/** One attempt, no backoff: in degraded mode a call fails fast to the journal or the cache. */
export const ONCE: RetryPolicy = { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxElapsedMs: 0 };

/** How long each check of the probe may take. */
const PROBE_CHECK_MS = 1000;

export class DegradedMode {
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;

  private readonly core: StoreCore;
  private readonly records: SessionRecords;
  private readonly onReplayConflict: SessionStoreOptions['onReplayConflict'];

  constructor(core: StoreCore, records: SessionRecords, onReplayConflict: SessionStoreOptions['onReplayConflict']) {
    this.core = core;
    this.records = records;
    this.onReplayConflict = onReplayConflict;
  }

  enter(error: unknown): void {
    const { degraded, settings, metrics, logger } = this.core;
    if (!settings.degradedEnabled || degraded.active || this.core.closed) return;
    degraded.active = true;
    degraded.since = Date.now();
    metrics.degraded.set(1);
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'Redis unreachable: entering degraded mode');
    this.scheduleProbe();
  }

  close(): void {
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  private scheduleProbe(): void {
    if (this.probeTimer || this.core.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe().finally(() => {
        if (this.core.degraded.active) this.scheduleProbe();
      });
    }, this.core.settings.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** Replays the journal, then checks every master; leaves degraded mode when all of it worked. */
  async probe(): Promise<boolean> {
    const { degraded, redis, metrics, logger } = this.core;
    if (this.probing || !degraded.active) return !degraded.active;
    this.probing = true;
    try {
      while (degraded.journal.length > 0) {
        const entry = degraded.journal[0] as JournalEntry;
        const reason = await this.replay(entry);
        degraded.journal.shift();
        degraded.replayed++;
        if (reason) {
          degraded.replayConflicts++;
          degraded.cache.delete(this.core.keys.session(entry.pool, entry.id));
          metrics.journalReplays.inc({ result: 'conflict' });
          logger.warn({ sessionId: entry.id, kind: entry.kind, reason }, 'journaled write refused on replay');
          this.onReplayConflict?.({ entry, reason });
        } else {
          metrics.journalReplays.inc({ result: 'applied' });
        }
      }
      const masters = redis.nodes('master');
      if (masters.length === 0) return false;
      const info = (await withTimeout(masters[0]!.call('CLUSTER', 'INFO'), PROBE_CHECK_MS)) as string;
      if (!info.includes('cluster_state:ok')) return false;
      await Promise.all(masters.map((node) => withTimeout(node.ping(), PROBE_CHECK_MS)));
      degraded.active = false;
      metrics.degraded.set(0);
      logger.info(
        { degradedForMs: Date.now() - degraded.since, replayed: degraded.replayed },
        'Redis reachable again: leaving degraded mode',
      );
      return true;
    } catch (error) {
      logger.debug({ err: error instanceof Error ? error.message : String(error) }, 'degraded-mode probe failed');
      return false;
    } finally {
      this.probing = false;
    }
  }

  /** Applies one journal entry with its checks; returns a refusal reason, or null when applied. Transient errors propagate. */
  private async replay(entry: JournalEntry): Promise<string | null> {
    try {
      if (entry.kind === 'create') {
        await this.records.createInRedis(
          entry.id,
          entry.pool,
          entry.serialized,
          entry.checksum,
          entry.ttlSeconds,
          entry.anonymous,
          entry.owner,
          entry.wid,
          ONCE,
        );
      } else if (entry.kind === 'update') {
        await this.records.updateInRedis(entry, ONCE);
      } else {
        await this.records.deleteInRedis(entry.pool, entry.id, ONCE);
      }
      return null;
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      if (error instanceof VersionConflictError) return 'version';
      if (error instanceof FencedError) return 'fenced';
      if (error instanceof SessionMovingError) return 'moving';
      if (error instanceof SessionNotFoundError) return 'missing';
      if (error instanceof SessionStoreError) return error.code;
      throw error;
    }
  }

  cachedOrUnavailable(pool: string, id: string, op: string): CachedSession {
    const cached = this.core.degraded.cache.get(this.core.keys.session(pool, id));
    if (!cached) throw new StoreUnavailableError(`${op}: Redis is unreachable and session ${id} is not in the local cache`);
    return cached;
  }

  /** A create while degraded: journaled, and answered from the record it will write. */
  create(entry: Extract<JournalEntry, { kind: 'create' }>): SessionRecord {
    this.core.degraded.enqueue(entry);
    const stored: StoredSession = {
      record: {
        id: entry.id,
        pool: entry.pool,
        version: 1,
        createdAt: entry.at,
        lastAccessedAt: entry.at,
        ttlSeconds: entry.ttlSeconds,
        anonymous: entry.anonymous,
        owner: entry.owner || null,
        epoch: entry.owner ? 1 : 0,
        movingBy: null,
        checksum: entry.checksum,
      },
      serialized: entry.serialized,
      leaseExpiresAt: entry.owner ? entry.at + this.core.settings.defaultLeaseMs : 0,
      header: '',
      segments: undefined,
    };
    this.records.remember(entry.pool, entry.id, stored);
    return withData(stored);
  }

  /** An update while degraded: checked against the cached session (fence, moving mark, version), then journaled. */
  update(entry: Extract<JournalEntry, { kind: 'update' }>): SessionRecord {
    const cached = this.cachedOrUnavailable(entry.pool, entry.id, 'update');
    const current = cached.record;
    const refuse = (error: SessionStoreError) => {
      this.core.metrics.conflicts.inc({ op: 'update', kind: error.code });
      return error;
    };
    if (entry.fence) {
      if (entry.fence.epoch !== current.epoch || (entry.fence.owner !== undefined && entry.fence.owner !== current.owner)) {
        throw refuse(new FencedError(entry.id, current.owner, current.epoch));
      }
      if (current.movingBy) throw refuse(new SessionMovingError(entry.id, current.movingBy));
    }
    if (entry.expectedVersion !== current.version) throw refuse(new VersionConflictError(entry.id, entry.expectedVersion, current.version));
    this.core.degraded.enqueue(entry);
    const stored: StoredSession = {
      record: { ...current, version: current.version + 1, lastAccessedAt: entry.at, checksum: entry.checksum },
      serialized: entry.serialized,
      leaseExpiresAt: cached.leaseExpiresAt,
      header: '',
      segments: undefined,
    };
    this.records.remember(entry.pool, entry.id, stored);
    return withData(stored);
  }

  /** A delete while degraded: journaled; true when the session was known here. */
  delete(pool: string, id: string): boolean {
    const { degraded } = this.core;
    const key = this.core.keys.session(pool, id);
    const known = degraded.cache.get(key) !== undefined;
    degraded.enqueue({ kind: 'delete', id, pool, at: Date.now() });
    degraded.cache.delete(key);
    return known;
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('probe timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
