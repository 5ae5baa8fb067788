// Typed errors of the session store. Each has a stable `code` that the HTTP layer maps to a
// status; messages name ids and reasons only, never session data.

export abstract class SessionStoreError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The id is not a well-formed session id (base64url, 22 to 64 characters). */
export class InvalidSessionIdError extends SessionStoreError {
  readonly code = 'INVALID_SESSION_ID';
}

/** A pool, owner, worker or migration name that cannot be used in a key. */
export class InvalidNameError extends SessionStoreError {
  readonly code = 'INVALID_NAME';
}

/** The data is not JSON-serializable (undefined, functions, cycles, NaN, BigInt, ...). */
export class InvalidSessionDataError extends SessionStoreError {
  readonly code = 'INVALID_SESSION_DATA';
}

export class SessionTooLargeError extends SessionStoreError {
  readonly code = 'SESSION_TOO_LARGE';
  readonly bytes: number;
  readonly maxBytes: number;
  constructor(bytes: number, maxBytes: number) {
    super(`session data is ${bytes} bytes, over the limit of ${maxBytes}`);
    this.bytes = bytes;
    this.maxBytes = maxBytes;
  }
}

export class InvalidTtlError extends SessionStoreError {
  readonly code = 'INVALID_TTL';
}

/** Bad option or argument other than the above (a lease length, a page limit). */
export class InvalidArgumentError extends SessionStoreError {
  readonly code = 'INVALID_ARGUMENT';
}

export class SessionNotFoundError extends SessionStoreError {
  readonly code = 'SESSION_NOT_FOUND';
  readonly sessionId: string;
  constructor(sessionId: string) {
    super(`session ${sessionId} does not exist`);
    this.sessionId = sessionId;
  }
}

/** The expected version is not the stored one (compare-and-swap failed). */
export class VersionConflictError extends SessionStoreError {
  readonly code = 'VERSION_CONFLICT';
  readonly sessionId: string;
  readonly expectedVersion: number;
  readonly actualVersion: number | null;
  constructor(sessionId: string, expectedVersion: number, actualVersion: number | null) {
    super(`session ${sessionId}: expected version ${expectedVersion}, stored ${actualVersion ?? 'unknown'}`);
    this.sessionId = sessionId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/** A fenced write whose epoch (or owner) is no longer the stored one: the writer lost the session. */
export class FencedError extends SessionStoreError {
  readonly code = 'FENCED';
  readonly sessionId: string;
  readonly owner: string | null;
  readonly epoch: number;
  constructor(sessionId: string, owner: string | null, epoch: number) {
    super(`session ${sessionId}: write fenced, the session is now at epoch ${epoch} (owner ${owner ?? 'none'})`);
    this.sessionId = sessionId;
    this.owner = owner;
    this.epoch = epoch;
  }
}

/** A fenced (worker) write or a claim by another owner while a migration moves the session. */
export class SessionMovingError extends SessionStoreError {
  readonly code = 'SESSION_MOVING';
  readonly sessionId: string;
  readonly movingBy: string;
  constructor(sessionId: string, movingBy: string) {
    super(`session ${sessionId} is being moved by ${movingBy}`);
    this.sessionId = sessionId;
    this.movingBy = movingBy;
  }
}

/** Claim refused: another owner holds an unexpired lease. */
export class SessionOwnedError extends SessionStoreError {
  readonly code = 'SESSION_OWNED';
  readonly sessionId: string;
  readonly owner: string;
  readonly epoch: number;
  readonly leaseExpiresAt: number;
  constructor(sessionId: string, owner: string, epoch: number, leaseExpiresAt: number) {
    super(`session ${sessionId} is owned by ${owner} until ${new Date(leaseExpiresAt).toISOString()}`);
    this.sessionId = sessionId;
    this.owner = owner;
    this.epoch = epoch;
    this.leaseExpiresAt = leaseExpiresAt;
  }
}

/** Renew refused: the owner or epoch changed since the lease was granted. */
export class LeaseLostError extends SessionStoreError {
  readonly code = 'LEASE_LOST';
  readonly sessionId: string;
  constructor(sessionId: string, owner: string | null, epoch: number) {
    super(`session ${sessionId}: lease lost, now owner ${owner ?? 'none'} at epoch ${epoch}`);
    this.sessionId = sessionId;
  }
}

/** The stored session failed its checksum or schema check; it was quarantined. */
export class SessionCorruptedError extends SessionStoreError {
  readonly code = 'SESSION_CORRUPTED';
  readonly sessionId: string;
  readonly reason: string;
  readonly quarantineKey: string;
  constructor(sessionId: string, reason: string, quarantineKey: string) {
    super(`session ${sessionId} is corrupted (${reason}); moved to ${quarantineKey}`);
    this.sessionId = sessionId;
    this.reason = reason;
    this.quarantineKey = quarantineKey;
  }
}

/** Redis is unreachable and the request cannot be served from the local cache or journal. */
export class StoreUnavailableError extends SessionStoreError {
  readonly code = 'STORE_UNAVAILABLE';
}

/** Degraded mode: the local write journal is full. */
export class JournalFullError extends SessionStoreError {
  readonly code = 'JOURNAL_FULL';
}

/** Durability 'replica': no replica acknowledged the write in time. The write may or may not survive a failover. */
export class ReplicaAckTimeoutError extends SessionStoreError {
  readonly code = 'REPLICA_ACK_TIMEOUT';
  readonly sessionId: string;
  constructor(sessionId: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(`session ${sessionId}: no replica acknowledged the write within ${timeoutMs} ms`, options);
    this.sessionId = sessionId;
  }
}

/** withAnonymousSession could not create its temporary session. */
export class AnonymousSessionError extends SessionStoreError {
  readonly code = 'ANONYMOUS_SESSION_FAILED';
}

/** mutate gave up after maxAttempts version conflicts. */
export class TooManyConflictsError extends SessionStoreError {
  readonly code = 'TOO_MANY_CONFLICTS';
  readonly sessionId: string;
  readonly attempts: number;
  constructor(sessionId: string, attempts: number) {
    super(`session ${sessionId}: still conflicting after ${attempts} attempts`);
    this.sessionId = sessionId;
    this.attempts = attempts;
  }
}

export class WorkerNotFoundError extends SessionStoreError {
  readonly code = 'WORKER_NOT_FOUND';
}

export class StoreClosedError extends SessionStoreError {
  readonly code = 'STORE_CLOSED';
}

/** An invariant of the store itself broke (an unexpected script reply, an id collision). */
export class InternalStoreError extends SessionStoreError {
  readonly code = 'INTERNAL';
}
