// The session store's public contract, shared by the operator, the workers and the migration
// engine. Implementations live beside this file (session-store.ts); consumers import types
// from here and never reach into Redis themselves.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A session as stored. Timestamps are milliseconds since the epoch. */
export interface SessionRecord {
  /** At least 128 random bits, base64url; never guessable. */
  id: string;
  pool: string;
  data: JsonValue;
  /** Grows by one on every data write; the compare-and-swap key. */
  version: number;
  createdAt: number;
  lastAccessedAt: number;
  ttlSeconds: number;
  anonymous: boolean;
  /** The worker pod that holds the session, or null when unowned. */
  owner: string | null;
  /** Fencing epoch: grows on every owner change, never shrinks. */
  epoch: number;
  /** Set while a migration moves the session: workers start no new work on it. */
  movingBy: string | null;
  /** Checksum of the serialized data (CRC-32, 8 hex digits); a mismatch means corruption. */
  checksum: string;
}

export interface CreateSessionInput {
  pool: string;
  data?: JsonValue;
  /** Defaults to the pool's session TTL (3600 s), or the anonymous TTL (300 s) when anonymous. */
  ttlSeconds?: number;
  anonymous?: boolean;
  owner?: string;
}

/** A session copied in from elsewhere (a worker's memory) keeping its id, version and createdAt. */
export interface ImportSessionInput {
  /** The session's existing id (same format as the store's ids). */
  id: string;
  pool: string;
  data: JsonValue;
  /** Positive integer; the imported session starts at this version. */
  version: number;
  /** ms since the epoch, non-negative integer. */
  createdAt: number;
  /** Defaults as in create. */
  ttlSeconds?: number;
  /** The owner to give the session (a lease of the default length, epoch 1); none when null or absent. */
  owner?: string | null;
  anonymous?: boolean;
}

export interface ImportSessionResult {
  /** False when a session with this id was present already: nothing was written. */
  created: boolean;
  /** The imported session, or the one already present. */
  record: SessionRecord;
}

/** What a writer holds: the epoch it read. A write whose epoch is stale is refused (fenced). */
export interface Fence {
  epoch: number;
  /** When given, the write is also refused unless this is still the owner. */
  owner?: string;
}

/** Every operation on one session names its pool: the session's key holds the pool (docs/store.md). */
export interface PoolScope {
  pool: string;
}

export interface UpdateOptions extends PoolScope {
  expectedVersion: number;
  fence?: Fence;
}

export interface MutateOptions extends PoolScope {
  /** Attempts of read-modify-write on version conflict; default 10. */
  maxAttempts?: number;
  fence?: Fence;
}

export interface ListPage {
  ids: string[];
  /** Pass back to get the next page; null at the end. */
  cursor: string | null;
}

export interface Lease {
  sessionId: string;
  pool: string;
  owner: string;
  epoch: number;
  /** ms since epoch when the lease lapses unless renewed. */
  expiresAt: number;
}

/** One owner change, checked against the owner and epoch the mover saw. */
export interface OwnerMove {
  sessionId: string;
  fromOwner: string | null;
  fromEpoch: number;
  toOwner: string | null;
}

export type OwnerMoveOutcome =
  | { sessionId: string; status: 'moved'; epoch: number }
  | { sessionId: string; status: 'conflict'; owner: string | null; epoch: number }
  | { sessionId: string; status: 'missing' };

/** What a mover needs of a session: read with one HGET of the header, without the data (see readOwners). */
export interface OwnerState {
  sessionId: string;
  pool: string;
  owner: string | null;
  epoch: number;
  /** The migration whose moving mark is set, or null. */
  movingBy: string | null;
}

export interface SweepResult {
  /** Index entries removed because their session had expired or was deleted. */
  expired: number;
  /** Sessions whose lease had lapsed and were released (owner cleared). */
  leasesReleased: number;
  durationMs: number;
  /** Per-owner index entries removed because the session is gone or has another owner. */
  ownerEntriesRemoved?: number;
  /** Pool-index entries of live sessions whose expiry score was brought up to date. */
  rescored?: number;
}

export interface WorkerRegistration {
  pool: string;
  worker: string;
  /** Where the worker's HTTP API listens (host:port). */
  endpoint: string;
  /** Set when the worker is told to drain (an evacuation or shutdown). */
  draining: boolean;
  heartbeatAt: number;
}

export interface SessionStoreStats {
  degraded: boolean;
  queuedWrites: number;
  cachedSessions: number;
  /** Degraded-mode journal entries replayed since start (applied or refused). */
  replayedWrites?: number;
  /** Journal entries refused on replay (version, fence, moving or missing): not applied. */
  replayConflicts?: number;
}

/** A request's outcome as recorded for its Idempotency-Key: the status and JSON body its client was sent. */
export interface RecordedReply {
  status: number;
  body: JsonValue;
}

/** The routes whose keyed requests are recorded by pool, not by session (request-records.ts). */
export type RequestScope = 'create' | 'execute';

/** A keyed request recorded by pool (request-records.ts). */
export interface RequestRecordRef {
  pool: string;
  scope: RequestScope;
  /** The client's Idempotency-Key. */
  key: string;
  /** A hash of the request (its route and body): a key sent again with another request is refused. */
  fingerprint: string;
  /** Who runs the request: unique per request (a worker name and a nonce). */
  claimant: string;
}

/** What a claim found: the key is now this request's, another request with the key is running, the key
 *  was used for another request, or the reply recorded for it. */
export type RequestClaim =
  { state: 'claimed' } | { state: 'pending' } | { state: 'mismatch' } | { state: 'recorded'; reply: RecordedReply };

export interface IdempotencyRecord {
  /** The client's Idempotency-Key: 1 to 128 printable ASCII characters. */
  key: string;
  reply: RecordedReply;
  /** How long the record answers retries (default 1 h). */
  keepMs?: number;
  /** Records kept per session, the oldest dropped first (default 1,024). */
  maxEntries?: number;
}

/** Durability of acknowledged writes: 'replica' waits (WAIT) for one replica to have it. */
export type DurabilityLevel = 'leader' | 'replica';

export interface SessionStore {
  create(input: CreateSessionInput): Promise<SessionRecord>;
  /** Creates a session with a given id, version and createdAt, atomically and only if absent.
   *  Optional in the contract so test doubles need not implement it; RedisSessionStore does. */
  importSession?(input: ImportSessionInput): Promise<ImportSessionResult>;
  /** Reads a session of `pool`; updates lastAccessedAt and slides its TTL when the last slide is older than
   *  the touch granularity (RedisSessionStore: option touchGranularityMs, docs/store.md). Null when absent
   *  (a session of another pool is absent: its key is another). */
  get(id: string, options: PoolScope & { touch?: boolean }): Promise<SessionRecord | null>;
  exists(id: string, options: PoolScope): Promise<boolean>;
  /** Writes data if the stored version is options.expectedVersion (and the fence holds). The record
   *  returned carries `data` itself, not a copy: the caller keeps ownership of the value it passed. */
  update(id: string, data: JsonValue, options: UpdateOptions): Promise<SessionRecord>;
  /** Read-modify-write that retries on version conflict. */
  mutate(
    id: string,
    change: (data: JsonValue, record: SessionRecord) => JsonValue | Promise<JsonValue>,
    options: MutateOptions,
  ): Promise<SessionRecord>;
  delete(id: string, options: PoolScope): Promise<boolean>;
  count(pool: string): Promise<number>;
  list(pool: string, options?: { cursor?: string | null; limit?: number }): Promise<ListPage>;
  /** Runs work in a fresh temporary session, deleted afterwards on success or failure. */
  withAnonymousSession<T>(
    pool: string,
    work: (session: SessionRecord) => Promise<T>,
    options?: { ttlSeconds?: number; owner?: string },
  ): Promise<T>;

  claim(id: string, owner: string, options: PoolScope & { leaseMs?: number }): Promise<Lease>;
  renew(lease: Lease, leaseMs?: number): Promise<Lease>;
  release(lease: Lease): Promise<void>;
  /** Moves owners in a batch; each move is a compare-and-swap on owner and epoch. */
  moveOwners(pool: string, moves: OwnerMove[]): Promise<OwnerMoveOutcome[]>;
  /** Marks sessions of `pool` as being moved (workers start no new work) or clears the mark. */
  setMoving(pool: string, sessionIds: string[], migration: string | null): Promise<void>;
  /** Owner, epoch, moving mark and pool of many sessions at once (one HGET of the header each, pipelined per node);
   *  absent sessions are left out of the map. Optional so test doubles need not implement it;
   *  RedisSessionStore does, and the migration executor uses it when present. */
  readOwners?(pool: string, sessionIds: string[]): Promise<Map<string, OwnerState>>;
  /** moveOwners for a migration: each move is one script (CAS on owner, epoch and pool) that also
   *  clears the session's moving mark when it is `migration`'s; a refused move leaves the mark as is.
   *  Owner-index updates are batched per owner. Optional like readOwners. */
  migrateOwners?(pool: string, moves: OwnerMove[], migration: string): Promise<OwnerMoveOutcome[]>;
  listByOwner(pool: string, owner: string): Promise<string[]>;

  // Idempotency records (docs/activation.md). Optional so test doubles need not implement them; a worker
  // without them runs requests without recording (an Idempotency-Key is then not honoured).
  /** update, and the request's record in the same script (same slot). */
  updateRecorded?(id: string, data: JsonValue, options: UpdateOptions, record: IdempotencyRecord): Promise<SessionRecord>;
  /** Records an outcome that wrote nothing, if the session is still at the fence's owner and epoch; false when not. */
  recordOutcome?(id: string, fence: { owner: string; epoch: number }, record: IdempotencyRecord, options: PoolScope): Promise<boolean>;
  /** The reply recorded for a key, or undefined (none, or older than its keep time). */
  recordedReply?(id: string, key: string, options: PoolScope & { keepMs?: number }): Promise<RecordedReply | undefined>;
  /** Drops a session's records (on delete). */
  forgetRecords?(id: string, options: PoolScope): Promise<void>;
  /** Records of keyed creates and anonymous executes (request-records.ts): claim before running, then
   *  complete with the reply, or abandon when the request failed. */
  claimRequest?(ref: RequestRecordRef, pendingMs: number): Promise<RequestClaim>;
  completeRequest?(ref: RequestRecordRef, reply: RecordedReply, keepMs?: number): Promise<boolean>;
  abandonRequest?(ref: RequestRecordRef): Promise<void>;
  /** Session counts per owner (unowned under ''), for status and planning. */
  countByOwner(pool: string): Promise<Map<string, number>>;

  /** Registers or heartbeats a worker. `draining: true` sets the flag; `false` leaves a flag set by
   *  setWorkerDraining on the live registration in place (only setWorkerDraining clears it). */
  registerWorker(registration: Omit<WorkerRegistration, 'heartbeatAt'>, ttlMs?: number): Promise<void>;
  listWorkers(pool: string): Promise<WorkerRegistration[]>;
  setWorkerDraining(pool: string, worker: string, draining: boolean): Promise<void>;
  unregisterWorker(pool: string, worker: string): Promise<void>;

  sweep(pool: string): Promise<SweepResult>;
  stats(): SessionStoreStats;
  close(): Promise<void>;
}
