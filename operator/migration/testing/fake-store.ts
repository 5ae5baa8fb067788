// An in-memory SessionStore for unit tests of the migration engine. It keeps the rules the
// engine relies on: owner changes only by compare-and-swap on (owner, epoch), epochs only grow,
// fenced writes with a stale epoch (or while the session is moving) are refused, per-owner
// counts follow the owner. Faults can be injected per method (failNext) or by a hook.
import { randomBytes } from 'node:crypto';
import { FencedError, SessionMovingError, SessionNotFoundError, VersionConflictError, WorkerNotFoundError } from '../../store/errors.ts';
import type {
  CreateSessionInput,
  JsonValue,
  Lease,
  ListPage,
  MutateOptions,
  OwnerMove,
  OwnerMoveOutcome,
  OwnerState,
  SessionRecord,
  SessionStore,
  SessionStoreStats,
  SweepResult,
  UpdateOptions,
  WorkerRegistration,
} from '../../store/types.ts';

export type StoreMethod = keyof SessionStore;

export class FakeStoreError extends Error {
  constructor(message = 'injected store failure') {
    super(message);
    this.name = 'FakeStoreError';
  }
}

export class FakeSessionStore implements SessionStore {
  /** By id (seeded ids are random, so unique across pools); every by-id operation names a pool and
   *  finds only that pool's session, as the store's keys do. */
  readonly sessions = new Map<string, SessionRecord>();
  readonly workers = new Map<string, WorkerRegistration>();
  /** Calls per method, for assertions. */
  readonly calls = new Map<StoreMethod, number>();
  /** Every owner change applied (moveOwners), in order. */
  readonly ownerChanges: { sessionId: string; from: string | null; to: string | null; epoch: number }[] = [];
  private readonly failures = new Map<StoreMethod, { count: number; error: () => Error }>();
  /** Runs before every call; may throw or change state (a concurrent actor). */
  beforeCall: ((method: StoreMethod, args: unknown[]) => void | Promise<void>) | undefined;

  failNext(method: StoreMethod, count = 1, error: () => Error = () => new FakeStoreError()): void {
    this.failures.set(method, { count, error });
  }

  private async enter(method: StoreMethod, args: unknown[]): Promise<void> {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    if (this.beforeCall) await this.beforeCall(method, args);
    const failure = this.failures.get(method);
    if (failure && failure.count > 0) {
      failure.count -= 1;
      throw failure.error();
    }
  }

  /** Adds sessions owned by `owner` directly (test setup); returns their ids. */
  seed(pool: string, owner: string | null, count: number, epoch = 1): string[] {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = randomBytes(16).toString('base64url');
      const now = Date.now();
      this.sessions.set(id, {
        id,
        pool,
        data: { n: 0 },
        version: 1,
        createdAt: now,
        lastAccessedAt: now,
        ttlSeconds: 3600,
        anonymous: false,
        owner,
        epoch,
        movingBy: null,
        checksum: '',
      });
      ids.push(id);
    }
    return ids;
  }

  addWorker(pool: string, worker: string, draining = false): void {
    this.workers.set(`${pool}/${worker}`, { pool, worker, endpoint: `${worker}:8080`, draining, heartbeatAt: Date.now() });
  }

  ownersOf(pool: string): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.sessions.values()) if (s.pool === pool) counts.set(s.owner ?? '', (counts.get(s.owner ?? '') ?? 0) + 1);
    return counts;
  }

  /** The session `id` of `pool`, or undefined (absent, or another pool's). */
  private of(pool: string, id: string): SessionRecord | undefined {
    const record = this.sessions.get(id);
    return record?.pool === pool ? record : undefined;
  }

  // --- SessionStore ---------------------------------------------------------------------------

  async create(input: CreateSessionInput): Promise<SessionRecord> {
    await this.enter('create', [input]);
    const [id] = this.seed(input.pool, input.owner ?? null, 1);
    const record = this.sessions.get(id!)!;
    record.data = input.data ?? null;
    return structuredClone(record);
  }

  async get(id: string, options: { pool: string; touch?: boolean }): Promise<SessionRecord | null> {
    await this.enter('get', [id]);
    const record = this.of(options.pool, id);
    return record ? structuredClone(record) : null;
  }

  async exists(id: string, options: { pool: string }): Promise<boolean> {
    await this.enter('exists', [id]);
    return this.of(options.pool, id) !== undefined;
  }

  private checkFence(record: SessionRecord, fence: { epoch: number; owner?: string } | undefined): void {
    if (!fence) return;
    if (fence.epoch !== record.epoch || (fence.owner !== undefined && fence.owner !== record.owner))
      throw new FencedError(record.id, record.owner, record.epoch);
    if (record.movingBy) throw new SessionMovingError(record.id, record.movingBy);
  }

  async update(id: string, data: JsonValue, options: UpdateOptions): Promise<SessionRecord> {
    await this.enter('update', [id, data, options]);
    const record = this.of(options.pool, id);
    if (!record) throw new SessionNotFoundError(id);
    this.checkFence(record, options.fence);
    if (record.version !== options.expectedVersion) throw new VersionConflictError(id, options.expectedVersion, record.version);
    record.data = structuredClone(data);
    record.version += 1;
    return structuredClone(record);
  }

  async mutate(
    id: string,
    change: (data: JsonValue, record: SessionRecord) => JsonValue | Promise<JsonValue>,
    options: MutateOptions,
  ): Promise<SessionRecord> {
    await this.enter('mutate', [id]);
    const record = this.of(options.pool, id);
    if (!record) throw new SessionNotFoundError(id);
    this.checkFence(record, options.fence);
    const next = await change(structuredClone(record.data), structuredClone(record));
    this.checkFence(record, options.fence);
    record.data = structuredClone(next);
    record.version += 1;
    return structuredClone(record);
  }

  async delete(id: string, options: { pool: string }): Promise<boolean> {
    await this.enter('delete', [id]);
    return this.of(options.pool, id) !== undefined && this.sessions.delete(id);
  }

  async count(pool: string): Promise<number> {
    await this.enter('count', [pool]);
    return [...this.sessions.values()].filter((s) => s.pool === pool).length;
  }

  async list(pool: string, options?: { cursor?: string | null; limit?: number }): Promise<ListPage> {
    await this.enter('list', [pool]);
    const ids = [...this.sessions.values()].filter((s) => s.pool === pool).map((s) => s.id);
    const start = Number(options?.cursor ?? 0);
    const limit = options?.limit ?? 100;
    const next = start + limit;
    return { ids: ids.slice(start, next), cursor: next < ids.length ? String(next) : null };
  }

  async withAnonymousSession<T>(
    pool: string,
    work: (session: SessionRecord) => Promise<T>,
    options?: { ttlSeconds?: number; owner?: string },
  ): Promise<T> {
    const session = await this.create({ pool, anonymous: true, ...(options?.owner ? { owner: options.owner } : {}) });
    try {
      return await work(session);
    } finally {
      this.sessions.delete(session.id);
    }
  }

  async claim(id: string, owner: string, options: { pool: string; leaseMs?: number }): Promise<Lease> {
    await this.enter('claim', [id, owner]);
    const { pool, leaseMs = 30_000 } = options;
    const record = this.of(pool, id);
    if (!record) throw new SessionNotFoundError(id);
    if (record.movingBy) throw new SessionMovingError(id, record.movingBy);
    if (record.owner !== owner) {
      record.owner = owner;
      record.epoch += 1;
    }
    return { sessionId: id, pool, owner, epoch: record.epoch, expiresAt: Date.now() + leaseMs };
  }

  async renew(lease: Lease, leaseMs = 30_000): Promise<Lease> {
    await this.enter('renew', [lease]);
    return { ...lease, expiresAt: Date.now() + leaseMs };
  }

  async release(lease: Lease): Promise<void> {
    await this.enter('release', [lease]);
  }

  async moveOwners(pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]> {
    await this.enter('moveOwners', [moves]);
    return moves.map((move) => {
      const record = this.of(pool, move.sessionId);
      if (!record) return { sessionId: move.sessionId, status: 'missing' };
      if (record.owner !== move.fromOwner || record.epoch !== move.fromEpoch) {
        return { sessionId: move.sessionId, status: 'conflict', owner: record.owner, epoch: record.epoch };
      }
      record.owner = move.toOwner;
      record.epoch += 1;
      this.ownerChanges.push({ sessionId: move.sessionId, from: move.fromOwner, to: move.toOwner, epoch: record.epoch });
      return { sessionId: move.sessionId, status: 'moved', epoch: record.epoch };
    });
  }

  async readOwners(pool: string, sessionIds: string[]): Promise<Map<string, OwnerState>> {
    await this.enter('readOwners', [sessionIds]);
    const states = new Map<string, OwnerState>();
    for (const id of sessionIds) {
      const r = this.of(pool, id);
      if (r) states.set(id, { sessionId: id, pool: r.pool, owner: r.owner, epoch: r.epoch, movingBy: r.movingBy });
    }
    return states;
  }

  /** The batch move of RedisSessionStore: CAS on owner, epoch and pool, clearing the migration's own mark.
   *  Hooks and injected faults see it as 'moveOwners', so fault tests cover both paths. */
  async migrateOwners(pool: string, moves: OwnerMove[], migration: string): Promise<OwnerMoveOutcome[]> {
    await this.enter('moveOwners', [moves, pool, migration]);
    return moves.map((move) => {
      const record = this.of(pool, move.sessionId);
      if (!record) return { sessionId: move.sessionId, status: 'missing' };
      if (record.owner !== move.fromOwner || record.epoch !== move.fromEpoch) {
        return { sessionId: move.sessionId, status: 'conflict', owner: record.owner, epoch: record.epoch };
      }
      record.owner = move.toOwner;
      record.epoch += 1;
      if (record.movingBy === migration) record.movingBy = null;
      this.ownerChanges.push({ sessionId: move.sessionId, from: move.fromOwner, to: move.toOwner, epoch: record.epoch });
      return { sessionId: move.sessionId, status: 'moved', epoch: record.epoch };
    });
  }

  async setMoving(pool: string, sessionIds: string[], migration: string | null): Promise<void> {
    await this.enter('setMoving', [sessionIds, migration]);
    for (const id of sessionIds) {
      const record = this.of(pool, id);
      if (record) record.movingBy = migration;
    }
  }

  async listByOwner(pool: string, owner: string): Promise<string[]> {
    await this.enter('listByOwner', [pool, owner]);
    return [...this.sessions.values()].filter((s) => s.pool === pool && (s.owner ?? '') === owner).map((s) => s.id);
  }

  async countByOwner(pool: string): Promise<Map<string, number>> {
    await this.enter('countByOwner', [pool]);
    return this.ownersOf(pool);
  }

  async registerWorker(registration: Omit<WorkerRegistration, 'heartbeatAt'>, _ttlMs?: number): Promise<void> {
    await this.enter('registerWorker', [registration]);
    this.workers.set(`${registration.pool}/${registration.worker}`, { ...registration, heartbeatAt: Date.now() });
  }

  async listWorkers(pool: string): Promise<WorkerRegistration[]> {
    await this.enter('listWorkers', [pool]);
    return [...this.workers.values()].filter((w) => w.pool === pool).map((w) => ({ ...w }));
  }

  async setWorkerDraining(pool: string, worker: string, draining: boolean): Promise<void> {
    await this.enter('setWorkerDraining', [pool, worker, draining]);
    const registration = this.workers.get(`${pool}/${worker}`);
    if (!registration) throw new WorkerNotFoundError(`worker ${worker} is not registered in pool ${pool}`);
    registration.draining = draining;
  }

  async unregisterWorker(pool: string, worker: string): Promise<void> {
    await this.enter('unregisterWorker', [pool, worker]);
    this.workers.delete(`${pool}/${worker}`);
  }

  async sweep(pool: string): Promise<SweepResult> {
    await this.enter('sweep', [pool]);
    return { expired: 0, leasesReleased: 0, durationMs: 0 };
  }

  stats(): SessionStoreStats {
    return { degraded: false, queuedWrites: 0, cachedSessions: 0 };
  }

  async close(): Promise<void> {}
}
