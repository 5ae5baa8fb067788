// An in-memory SessionStore for unit tests of the worker: the contract of operator/store
// (version compare-and-swap, fencing epochs, owners, moving marks, worker registry,
// anonymous sessions) without Redis. Not for production and not for integration tests.
import { createHash, randomBytes } from 'node:crypto';
import type {
  CreateSessionInput,
  JsonValue,
  Lease,
  ListPage,
  MutateOptions,
  OwnerMove,
  OwnerMoveOutcome,
  SessionRecord,
  SessionStore,
  SessionStoreStats,
  SweepResult,
  UpdateOptions,
  WorkerRegistration,
} from '../../store/types.ts';
import type { SessionImport } from '../backends.ts';

export class FakeStoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const clone = <T>(value: T): T => structuredClone(value);
const checksum = (data: JsonValue) => createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 16);

/** Sessions are keyed by pool and id, as the store's keys are: the same id in two pools is two sessions. */
const keyOf = (pool: string, id: string) => `${pool}|${id}`;

export class MemorySessionStore implements SessionStore {
  readonly sessions = new Map<string, SessionRecord>();
  readonly workers = new Map<string, WorkerRegistration>();
  /** When set, every call fails as if Redis were unreachable. */
  unreachable = false;
  /** Calls to fail with a version conflict before succeeding (tests of the retry loop). */
  injectConflicts = 0;
  maxBytes = 1024 * 1024;
  calls: string[] = [];

  private check(op: string): void {
    this.calls.push(op);
    if (this.unreachable) throw new FakeStoreError('UNAVAILABLE', 'store unreachable');
  }

  private record(pool: string, id: string): SessionRecord | undefined {
    const r = this.sessions.get(keyOf(pool, id));
    if (r && r.lastAccessedAt + r.ttlSeconds * 1000 < Date.now()) {
      this.sessions.delete(keyOf(pool, id));
      return undefined;
    }
    return r;
  }

  /** For tests: the stored record of `id` in any pool (the first found), without a copy. */
  peek(id: string): SessionRecord | undefined {
    for (const r of this.sessions.values()) if (r.id === id) return r;
    return undefined;
  }

  private sizeCheck(data: JsonValue): void {
    if (Buffer.byteLength(JSON.stringify(data)) > this.maxBytes)
      throw new FakeStoreError('DATA_TOO_LARGE', `session data over ${this.maxBytes} bytes`);
  }

  async create(input: CreateSessionInput): Promise<SessionRecord> {
    this.check('create');
    const data = input.data ?? {};
    this.sizeCheck(data);
    const now = Date.now();
    const record: SessionRecord = {
      id: randomBytes(16).toString('base64url'),
      pool: input.pool,
      data: clone(data),
      version: 1,
      createdAt: now,
      lastAccessedAt: now,
      ttlSeconds: input.ttlSeconds ?? (input.anonymous ? 300 : 3600),
      anonymous: input.anonymous ?? false,
      owner: input.owner ?? null,
      epoch: input.owner ? 1 : 0,
      movingBy: null,
      checksum: checksum(data),
    };
    this.sessions.set(keyOf(record.pool, record.id), record);
    return clone(record);
  }

  async importSession(input: SessionImport): Promise<{ created: boolean; record: SessionRecord }> {
    this.check('importSession');
    const existing = this.record(input.pool, input.id);
    if (existing) return { created: false, record: clone(existing) };
    const record: SessionRecord = {
      id: input.id,
      pool: input.pool,
      data: clone(input.data),
      version: input.version,
      createdAt: input.createdAt,
      lastAccessedAt: Date.now(),
      ttlSeconds: input.ttlSeconds,
      anonymous: false,
      owner: input.owner,
      epoch: input.owner ? 1 : 0,
      movingBy: null,
      checksum: checksum(input.data),
    };
    this.sessions.set(keyOf(record.pool, record.id), record);
    return { created: true, record: clone(record) };
  }

  async get(id: string, options: { pool: string; touch?: boolean }): Promise<SessionRecord | null> {
    this.check('get');
    const r = this.record(options.pool, id);
    if (!r) return null;
    if (options.touch !== false) r.lastAccessedAt = Date.now();
    return clone(r);
  }

  async exists(id: string, options: { pool: string }): Promise<boolean> {
    this.check('exists');
    return this.record(options.pool, id) !== undefined;
  }

  async update(id: string, data: JsonValue, options: UpdateOptions): Promise<SessionRecord> {
    this.check('update');
    this.sizeCheck(data);
    const r = this.record(options.pool, id);
    if (!r) throw new FakeStoreError('NOT_FOUND', `session ${id} not found`);
    if (options.fence && (options.fence.epoch !== r.epoch || (options.fence.owner !== undefined && options.fence.owner !== r.owner))) {
      throw new FakeStoreError('FENCED', `stale epoch ${options.fence.epoch} (now ${r.epoch})`);
    }
    if (this.injectConflicts > 0) {
      this.injectConflicts--;
      r.version++;
    }
    if (options.expectedVersion !== r.version)
      throw new FakeStoreError('VERSION_CONFLICT', `expected version ${options.expectedVersion}, found ${r.version}`);
    r.data = clone(data);
    r.version++;
    r.lastAccessedAt = Date.now();
    r.checksum = checksum(data);
    return clone(r);
  }

  async mutate(
    id: string,
    change: (data: JsonValue, record: SessionRecord) => JsonValue | Promise<JsonValue>,
    options: MutateOptions,
  ): Promise<SessionRecord> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.get(id, { pool: options.pool });
      if (!r) throw new FakeStoreError('NOT_FOUND', `session ${id} not found`);
      try {
        return await this.update(id, await change(clone(r.data), r), {
          pool: options.pool,
          expectedVersion: r.version,
          ...(options.fence ? { fence: options.fence } : {}),
        });
      } catch (error) {
        if (!(error instanceof FakeStoreError && error.code === 'VERSION_CONFLICT') || attempt >= (options.maxAttempts ?? 10)) throw error;
      }
    }
  }

  async delete(id: string, options: { pool: string }): Promise<boolean> {
    this.check('delete');
    return this.sessions.delete(keyOf(options.pool, id));
  }

  /** The live ids of `pool`. */
  private idsOf(pool: string): string[] {
    return [...this.sessions.values()].filter((r) => r.pool === pool && this.record(pool, r.id)).map((r) => r.id);
  }

  async count(pool: string): Promise<number> {
    this.check('count');
    return this.idsOf(pool).length;
  }

  async list(pool: string, options: { cursor?: string | null; limit?: number } = {}): Promise<ListPage> {
    this.check('list');
    const ids = this.idsOf(pool).sort();
    const start = options.cursor ? Number(options.cursor) : 0;
    const limit = options.limit ?? 100;
    const page = ids.slice(start, start + limit);
    return { ids: page, cursor: start + limit < ids.length ? String(start + limit) : null };
  }

  async withAnonymousSession<T>(
    pool: string,
    work: (session: SessionRecord) => Promise<T>,
    options: { ttlSeconds?: number; owner?: string } = {},
  ): Promise<T> {
    const session = await this.create({ pool, anonymous: true, ...options });
    try {
      return await work(session);
    } finally {
      this.sessions.delete(keyOf(pool, session.id));
    }
  }

  async claim(id: string, owner: string, options: { pool: string; leaseMs?: number }): Promise<Lease> {
    this.check('claim');
    const { pool, leaseMs = 30_000 } = options;
    const r = this.record(pool, id);
    if (!r) throw new FakeStoreError('NOT_FOUND', `session ${id} not found`);
    if (r.owner !== owner) {
      r.owner = owner;
      r.epoch++;
    }
    return { sessionId: id, pool, owner, epoch: r.epoch, expiresAt: Date.now() + leaseMs };
  }

  async renew(lease: Lease, leaseMs = 30_000): Promise<Lease> {
    this.check('renew');
    const r = this.record(lease.pool, lease.sessionId);
    if (!r || r.owner !== lease.owner || r.epoch !== lease.epoch) throw new FakeStoreError('FENCED', 'lease lost');
    return { ...lease, expiresAt: Date.now() + leaseMs };
  }

  async release(lease: Lease): Promise<void> {
    this.check('release');
    const r = this.record(lease.pool, lease.sessionId);
    if (r && r.owner === lease.owner && r.epoch === lease.epoch) {
      r.owner = null;
      r.epoch++;
    }
  }

  async moveOwners(pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]> {
    this.check('moveOwners');
    return moves.map((m) => {
      const r = this.record(pool, m.sessionId);
      if (!r) return { sessionId: m.sessionId, status: 'missing' as const };
      if (r.owner !== m.fromOwner || r.epoch !== m.fromEpoch)
        return { sessionId: m.sessionId, status: 'conflict' as const, owner: r.owner, epoch: r.epoch };
      r.owner = m.toOwner;
      r.epoch++;
      return { sessionId: m.sessionId, status: 'moved' as const, epoch: r.epoch };
    });
  }

  async setMoving(pool: string, sessionIds: string[], migration: string | null): Promise<void> {
    this.check('setMoving');
    for (const id of sessionIds) {
      const r = this.record(pool, id);
      if (r) r.movingBy = migration;
    }
  }

  async listByOwner(pool: string, owner: string): Promise<string[]> {
    this.check('listByOwner');
    return this.idsOf(pool).filter((id) => this.record(pool, id)?.owner === owner);
  }

  async countByOwner(pool: string): Promise<Map<string, number>> {
    this.check('countByOwner');
    const counts = new Map<string, number>();
    for (const id of this.idsOf(pool)) {
      const r = this.record(pool, id)!;
      counts.set(r.owner ?? '', (counts.get(r.owner ?? '') ?? 0) + 1);
    }
    return counts;
  }

  async registerWorker(registration: Omit<WorkerRegistration, 'heartbeatAt'>): Promise<void> {
    this.check('registerWorker');
    this.workers.set(`${registration.pool}/${registration.worker}`, { ...registration, heartbeatAt: Date.now() });
  }

  async listWorkers(pool: string): Promise<WorkerRegistration[]> {
    this.check('listWorkers');
    return [...this.workers.values()].filter((w) => w.pool === pool).map(clone);
  }

  async setWorkerDraining(pool: string, worker: string, draining: boolean): Promise<void> {
    this.check('setWorkerDraining');
    const w = this.workers.get(`${pool}/${worker}`);
    if (w) w.draining = draining;
  }

  async unregisterWorker(pool: string, worker: string): Promise<void> {
    this.check('unregisterWorker');
    this.workers.delete(`${pool}/${worker}`);
  }

  async sweep(): Promise<SweepResult> {
    return { expired: 0, leasesReleased: 0, durationMs: 0 };
  }

  stats(): SessionStoreStats {
    return { degraded: this.unreachable, queuedWrites: 0, cachedSessions: 0 };
  }

  async close(): Promise<void> {}
}
