// The one in-memory SessionStore, for pure unit tests (the worker, the migration engine, the
// controllers). It keeps the store's contract without Redis: version compare-and-swap, fencing
// epochs that only grow, owner changes by compare-and-swap on (owner, epoch), moving marks,
// sessions keyed by pool and id (the same id in two pools is two sessions), TTLs, the worker
// registry; and throws the store's own typed errors. Faults: `unreachable`, `injectConflicts`,
// `failNext(method)` and the `beforeCall` hook (a concurrent actor). Never for integration tests.
import { createHash, randomBytes } from 'node:crypto';
import {
  FencedError,
  LeaseLostError,
  SessionMovingError,
  SessionNotFoundError,
  SessionTooLargeError,
  StoreUnavailableError,
  VersionConflictError,
  WorkerNotFoundError,
} from '../errors.ts';
import type {
  CreateSessionInput,
  ImportSessionInput,
  ImportSessionResult,
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
} from '../types.ts';

export type StoreMethod = keyof SessionStore;

/** A failure injected by failNext (not one of the store's own errors). */
export class FakeStoreError extends Error {
  constructor(message = 'injected store failure') {
    super(message);
    this.name = 'FakeStoreError';
  }
}

const clone = <T>(value: T): T => structuredClone(value);
const checksum = (data: JsonValue) => createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 8);
const keyOf = (pool: string, id: string) => `${pool}|${id}`;

export class MemorySessionStore implements SessionStore {
  /** By `pool|id`, as the store's keys are. */
  readonly sessions = new Map<string, SessionRecord>();
  readonly workers = new Map<string, WorkerRegistration>();
  /** Calls per method, for assertions. */
  readonly calls = new Map<StoreMethod, number>();
  /** Every owner change applied by moveOwners or migrateOwners, in order. */
  readonly ownerChanges: { sessionId: string; from: string | null; to: string | null; epoch: number }[] = [];
  /** When set, every call fails as if Redis were unreachable. */
  unreachable = false;
  /** Updates to fail with a version conflict (another writer got in first) before one applies. */
  injectConflicts = 0;
  maxBytes = 1024 * 1024;
  /** Runs before every call; may throw or change state (a concurrent actor). */
  beforeCall: ((method: StoreMethod, args: unknown[]) => void | Promise<void>) | undefined;
  private readonly failures = new Map<StoreMethod, { count: number; error: () => Error }>();

  failNext(method: StoreMethod, count = 1, error: () => Error = () => new FakeStoreError()): void {
    this.failures.set(method, { count, error });
  }

  private async enter(method: StoreMethod, args: unknown[]): Promise<void> {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    if (this.beforeCall) await this.beforeCall(method, args);
    if (this.unreachable) throw new StoreUnavailableError('store unreachable');
    const failure = this.failures.get(method);
    if (failure && failure.count > 0) {
      failure.count -= 1;
      throw failure.error();
    }
  }

  // --- test set-up and inspection ---------------------------------------------------------------

  private put(record: SessionRecord): SessionRecord {
    this.sessions.set(keyOf(record.pool, record.id), record);
    return record;
  }

  /** Adds sessions owned by `owner` directly (test setup); returns their ids. */
  seed(pool: string, owner: string | null, count: number, epoch = 1): string[] {
    return Array.from({ length: count }, () => this.put(this.fresh(pool, { n: 0 }, { owner, epoch })).id);
  }

  addWorker(pool: string, worker: string, draining = false): void {
    this.workers.set(`${pool}/${worker}`, { pool, worker, endpoint: `${worker}:8080`, draining, heartbeatAt: Date.now() });
  }

  ownersOf(pool: string): Map<string, number> {
    const counts = new Map<string, number>();
    for (const id of this.idsOf(pool)) {
      const owner = this.of(pool, id)!.owner ?? '';
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    return counts;
  }

  /** The stored record of `id` in any pool (the first found), without a copy. */
  peek(id: string): SessionRecord | undefined {
    for (const r of this.sessions.values()) if (r.id === id) return r;
    return undefined;
  }

  /** Removes the session `id` of any pool (it expired, or another actor deleted it). */
  drop(id: string): void {
    const record = this.peek(id);
    if (record) this.sessions.delete(keyOf(record.pool, id));
  }

  // --- internals ------------------------------------------------------------------------------------

  private fresh(pool: string, data: JsonValue, o: { owner?: string | null; epoch?: number; ttlSeconds?: number; anonymous?: boolean }) {
    const now = Date.now();
    const owner = o.owner ?? null;
    return {
      id: randomBytes(16).toString('base64url'),
      pool,
      data: clone(data),
      version: 1,
      createdAt: now,
      lastAccessedAt: now,
      ttlSeconds: o.ttlSeconds ?? (o.anonymous ? 300 : 3600),
      anonymous: o.anonymous ?? false,
      owner,
      epoch: o.epoch ?? (owner ? 1 : 0),
      movingBy: null,
      checksum: checksum(data),
    } satisfies SessionRecord;
  }

  /** The live session `id` of `pool` (an expired one is dropped), or undefined. */
  private of(pool: string, id: string): SessionRecord | undefined {
    const r = this.sessions.get(keyOf(pool, id));
    if (r && r.lastAccessedAt + r.ttlSeconds * 1000 < Date.now()) {
      this.sessions.delete(keyOf(pool, id));
      return undefined;
    }
    return r;
  }

  private idsOf(pool: string): string[] {
    return [...this.sessions.values()].filter((r) => r.pool === pool && this.of(pool, r.id)).map((r) => r.id);
  }

  private sizeCheck(data: JsonValue): void {
    const bytes = Buffer.byteLength(JSON.stringify(data));
    if (bytes > this.maxBytes) throw new SessionTooLargeError(bytes, this.maxBytes);
  }

  private checkFence(record: SessionRecord, fence: { epoch: number; owner?: string } | undefined): void {
    if (!fence) return;
    if (fence.epoch !== record.epoch || (fence.owner !== undefined && fence.owner !== record.owner))
      throw new FencedError(record.id, record.owner, record.epoch);
    if (record.movingBy) throw new SessionMovingError(record.id, record.movingBy);
  }

  private write(record: SessionRecord, data: JsonValue): SessionRecord {
    record.data = clone(data);
    record.version += 1;
    record.lastAccessedAt = Date.now();
    record.checksum = checksum(data);
    return clone(record);
  }

  private moveOwner(pool: string, move: OwnerMove, migration?: string): OwnerMoveOutcome {
    const record = this.of(pool, move.sessionId);
    if (!record) return { sessionId: move.sessionId, status: 'missing' };
    if (record.owner !== move.fromOwner || record.epoch !== move.fromEpoch)
      return { sessionId: move.sessionId, status: 'conflict', owner: record.owner, epoch: record.epoch };
    record.owner = move.toOwner;
    record.epoch += 1;
    if (migration !== undefined && record.movingBy === migration) record.movingBy = null;
    this.ownerChanges.push({ sessionId: move.sessionId, from: move.fromOwner, to: move.toOwner, epoch: record.epoch });
    return { sessionId: move.sessionId, status: 'moved', epoch: record.epoch };
  }

  // --- SessionStore ---------------------------------------------------------------------------

  async create(input: CreateSessionInput): Promise<SessionRecord> {
    await this.enter('create', [input]);
    const data = input.data ?? {};
    this.sizeCheck(data);
    return clone(this.put(this.fresh(input.pool, data, input)));
  }

  async importSession(input: ImportSessionInput): Promise<ImportSessionResult> {
    await this.enter('importSession', [input]);
    const existing = this.of(input.pool, input.id);
    if (existing) return { created: false, record: clone(existing) };
    const record = this.put({
      ...this.fresh(input.pool, input.data, { owner: input.owner ?? null, ...(input.ttlSeconds ? { ttlSeconds: input.ttlSeconds } : {}) }),
      id: input.id,
      version: input.version,
      createdAt: input.createdAt,
    });
    return { created: true, record: clone(record) };
  }

  async get(id: string, options: { pool: string; touch?: boolean }): Promise<SessionRecord | null> {
    await this.enter('get', [id]);
    const record = this.of(options.pool, id);
    if (!record) return null;
    if (options.touch !== false) record.lastAccessedAt = Date.now();
    return clone(record);
  }

  async exists(id: string, options: { pool: string }): Promise<boolean> {
    await this.enter('exists', [id]);
    return this.of(options.pool, id) !== undefined;
  }

  async update(id: string, data: JsonValue, options: UpdateOptions): Promise<SessionRecord> {
    await this.enter('update', [id, data, options]);
    this.sizeCheck(data);
    const record = this.of(options.pool, id);
    if (!record) throw new SessionNotFoundError(id);
    this.checkFence(record, options.fence);
    if (this.injectConflicts > 0) {
      this.injectConflicts -= 1;
      record.version += 1;
    }
    if (record.version !== options.expectedVersion) throw new VersionConflictError(id, options.expectedVersion, record.version);
    return this.write(record, data);
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
    const next = await change(clone(record.data), clone(record));
    // The change ran while others could act (beforeCall hooks): the fence is checked again, as the store's script does.
    this.checkFence(record, options.fence);
    this.sizeCheck(next);
    return this.write(record, next);
  }

  async delete(id: string, options: { pool: string }): Promise<boolean> {
    await this.enter('delete', [id]);
    return this.of(options.pool, id) !== undefined && this.sessions.delete(keyOf(options.pool, id));
  }

  async count(pool: string): Promise<number> {
    await this.enter('count', [pool]);
    return this.idsOf(pool).length;
  }

  async list(pool: string, options: { cursor?: string | null; limit?: number } = {}): Promise<ListPage> {
    await this.enter('list', [pool]);
    const ids = this.idsOf(pool).sort();
    const start = Number(options.cursor ?? 0);
    const next = start + (options.limit ?? 100);
    return { ids: ids.slice(start, next), cursor: next < ids.length ? String(next) : null };
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
    const record = this.of(lease.pool, lease.sessionId);
    if (!record || record.owner !== lease.owner || record.epoch !== lease.epoch)
      throw new LeaseLostError(lease.sessionId, record?.owner ?? null, record?.epoch ?? 0);
    return { ...lease, expiresAt: Date.now() + leaseMs };
  }

  async release(lease: Lease): Promise<void> {
    await this.enter('release', [lease]);
    const record = this.of(lease.pool, lease.sessionId);
    if (record && record.owner === lease.owner && record.epoch === lease.epoch) {
      record.owner = null;
      record.epoch += 1;
    }
  }

  async moveOwners(pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]> {
    await this.enter('moveOwners', [moves]);
    return moves.map((move) => this.moveOwner(pool, move));
  }

  /** The batch move of RedisSessionStore: CAS on owner, epoch and pool, clearing the migration's own mark.
   *  Hooks and injected faults see it as 'moveOwners', so fault tests cover both paths. */
  async migrateOwners(pool: string, moves: OwnerMove[], migration: string): Promise<OwnerMoveOutcome[]> {
    await this.enter('moveOwners', [moves, pool, migration]);
    return moves.map((move) => this.moveOwner(pool, move, migration));
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

  async setMoving(pool: string, sessionIds: string[], migration: string | null): Promise<void> {
    await this.enter('setMoving', [sessionIds, migration]);
    for (const id of sessionIds) {
      const record = this.of(pool, id);
      if (record) record.movingBy = migration;
    }
  }

  async listByOwner(pool: string, owner: string): Promise<string[]> {
    await this.enter('listByOwner', [pool, owner]);
    return this.idsOf(pool).filter((id) => (this.of(pool, id)?.owner ?? '') === owner);
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
    return [...this.workers.values()].filter((w) => w.pool === pool).map(clone);
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
    return { degraded: this.unreachable, queuedWrites: 0, cachedSessions: 0 };
  }

  async close(): Promise<void> {}
}
