// Errors the worker answers with. Every error response is JSON `{error: {code, message}}`
// with a stable `code`; the codes in RETRY_ELSEWHERE_CODES mean "nothing was applied, try
// again later or on another worker" and carry a Retry-After header. A message says what was
// wrong with the request, never what went wrong inside (no Redis node address, stack or
// underlying error text): the cause is kept on the error for the server's log only.

export type WorkerErrorCode =
  | 'INVALID_JSON'
  | 'INVALID_REQUEST'
  | 'INVALID_SESSION_ID'
  | 'INVALID_ARGS'
  | 'INVALID_SESSION_DATA'
  | 'UNKNOWN_HANDLER'
  | 'HANDLER_ERROR'
  | 'HANDLER_FAILED'
  | 'HANDLER_TIMEOUT'
  | 'HANDLER_UNAVAILABLE'
  | 'HANDLER_BAD_RESPONSE'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'SESSION_NOT_FOUND'
  | 'SESSION_NOT_ON_WORKER'
  | 'PAYLOAD_TOO_LARGE'
  | 'SESSION_TOO_LARGE'
  | 'SESSION_MOVING'
  | 'FENCED'
  | 'CONFLICT'
  | 'WORKER_DRAINING'
  | 'MODE_SWITCH_IN_PROGRESS'
  | 'STORE_UNAVAILABLE'
  | 'SESSION_CORRUPTED'
  | 'ANONYMOUS_SESSION_FAILED'
  | 'WRITE_UNCONFIRMED'
  | 'IDEMPOTENCY_KEY_IN_USE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'INTERNAL';

/** Codes after which a client may resend the same request (to another worker, later). */
export const RETRY_ELSEWHERE_CODES: ReadonlySet<string> = new Set<WorkerErrorCode>([
  'SESSION_MOVING',
  'FENCED',
  'CONFLICT',
  'WORKER_DRAINING',
  'MODE_SWITCH_IN_PROGRESS',
  'STORE_UNAVAILABLE',
  'HANDLER_UNAVAILABLE',
  'IDEMPOTENCY_KEY_IN_USE',
]);

const STATUS: Record<WorkerErrorCode, number> = {
  INVALID_JSON: 400,
  INVALID_REQUEST: 400,
  INVALID_SESSION_ID: 400,
  INVALID_ARGS: 400,
  INVALID_SESSION_DATA: 400,
  UNKNOWN_HANDLER: 400,
  HANDLER_ERROR: 422,
  // The external handler (docs/handler-contract.md): crashed or 5xx, hung, down or starting, broken answer.
  HANDLER_FAILED: 502,
  HANDLER_TIMEOUT: 504,
  HANDLER_UNAVAILABLE: 503,
  HANDLER_BAD_RESPONSE: 502,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  SESSION_NOT_FOUND: 404,
  SESSION_NOT_ON_WORKER: 404,
  PAYLOAD_TOO_LARGE: 413,
  SESSION_TOO_LARGE: 413,
  SESSION_MOVING: 409,
  FENCED: 409,
  CONFLICT: 409,
  WORKER_DRAINING: 503,
  MODE_SWITCH_IN_PROGRESS: 503,
  STORE_UNAVAILABLE: 503,
  SESSION_CORRUPTED: 500,
  ANONYMOUS_SESSION_FAILED: 503,
  WRITE_UNCONFIRMED: 504,
  // A keyed create or anonymous execute (docs/activation.md): its key's request is still running; the
  // key was sent before with another request.
  IDEMPOTENCY_KEY_IN_USE: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  INTERNAL: 500,
};

/** Every code the worker answers with, and its HTTP status (the OpenAPI document lists them). */
export const WORKER_ERROR_STATUS: Readonly<Record<WorkerErrorCode, number>> = STATUS;

export class WorkerError extends Error {
  readonly code: WorkerErrorCode;
  readonly status: number;
  /** Seconds, sent as Retry-After; set for the retry-elsewhere codes. */
  readonly retryAfterSeconds: number | undefined;
  readonly details: unknown;

  constructor(code: WorkerErrorCode, message: string, options: { retryAfterSeconds?: number; details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WorkerError';
    this.code = code;
    this.status = STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds ?? (RETRY_ELSEWHERE_CODES.has(code) ? 1 : undefined);
    this.details = options.details;
  }

  toBody(): { error: { code: string; message: string; details?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

/** The `code` of a typed error (the store's errors carry one), or undefined. */
export function errorCode(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'code' in error) {
    const code = error.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

// The store's error codes (operator/store/errors.ts), grouped by what the worker answers.
// Several spellings are accepted so that a renamed code degrades to the right class.
const STORE_NOT_FOUND = new Set(['NOT_FOUND', 'SESSION_NOT_FOUND']);
const STORE_CONFLICT = new Set(['VERSION_CONFLICT', 'CONFLICT', 'TOO_MANY_CONFLICTS']);
const STORE_FENCED = new Set(['FENCED', 'STALE_EPOCH', 'EPOCH_MISMATCH', 'OWNER_MISMATCH', 'FENCE_REJECTED']);
const STORE_MOVING = new Set(['SESSION_MOVING', 'MOVING']);
const STORE_TOO_LARGE = new Set(['DATA_TOO_LARGE', 'TOO_LARGE', 'SESSION_TOO_LARGE', 'PAYLOAD_TOO_LARGE']);
const STORE_INVALID_ID = new Set(['INVALID_ID', 'INVALID_SESSION_ID']);
const STORE_INVALID_DATA = new Set(['INVALID_DATA', 'NOT_JSON', 'INVALID_JSON']);
// INVALID_NAME / INVALID_ARGUMENT name the worker's own configuration or calls, not the
// client's input: they fall through to INTERNAL.
const STORE_INVALID_TTL = new Set(['INVALID_TTL']);
const STORE_CORRUPT = new Set(['CORRUPTED', 'SESSION_CORRUPTED', 'CORRUPT', 'CORRUPT_SESSION', 'CHECKSUM_MISMATCH']);
const STORE_UNAVAILABLE = new Set([
  'UNAVAILABLE',
  'STORE_UNAVAILABLE',
  'DEGRADED',
  'JOURNAL_FULL',
  'TIMEOUT',
  'RETRIES_EXHAUSTED',
  'STORE_CLOSED',
]);
const STORE_ANON = new Set(['ANONYMOUS_SESSION_FAILED', 'ANONYMOUS_CREATE_FAILED']);
const STORE_UNCONFIRMED = new Set(['REPLICA_ACK_TIMEOUT']);

/** 409 SESSION_MOVING for session `id` (`why`: what happened to it), with Retry-After 1: nothing ran. */
export function sessionMoving(id: string, why: string): WorkerError {
  return new WorkerError('SESSION_MOVING', `session ${id} ${why}; retry shortly`, { retryAfterSeconds: 1 });
}

/** Translates a store (or other) error into what the worker answers. */
export function toWorkerError(error: unknown, sessionId?: string): WorkerError {
  if (error instanceof WorkerError) return error;
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const what = sessionId ? `session ${sessionId}` : 'session';
  if (code !== undefined) {
    if (STORE_NOT_FOUND.has(code)) return new WorkerError('SESSION_NOT_FOUND', `${what} not found`);
    if (STORE_CONFLICT.has(code)) return new WorkerError('CONFLICT', `${what} changed concurrently; retry`, { cause: error });
    if (STORE_FENCED.has(code))
      return new WorkerError('FENCED', `${what} changed owner while the write was in flight; retry elsewhere`, { cause: error });
    if (STORE_MOVING.has(code)) return new WorkerError('SESSION_MOVING', `${what} is being moved; retry shortly`, { cause: error });
    if (STORE_TOO_LARGE.has(code)) return new WorkerError('SESSION_TOO_LARGE', message, { cause: error });
    if (STORE_INVALID_ID.has(code)) return new WorkerError('INVALID_SESSION_ID', message, { cause: error });
    if (STORE_INVALID_DATA.has(code)) return new WorkerError('INVALID_SESSION_DATA', message, { cause: error });
    if (STORE_INVALID_TTL.has(code)) return new WorkerError('INVALID_REQUEST', message, { cause: error });
    if (STORE_CORRUPT.has(code)) return new WorkerError('SESSION_CORRUPTED', `${what} is corrupted and was quarantined`, { cause: error });
    // The store's message quotes the underlying failure (a node address): keep it for the log.
    if (STORE_ANON.has(code))
      return new WorkerError('ANONYMOUS_SESSION_FAILED', 'could not create a temporary session; retry later', { cause: error });
    if (STORE_UNCONFIRMED.has(code)) {
      return new WorkerError(
        'WRITE_UNCONFIRMED',
        `${what}: the write was applied on the master but no replica confirmed it in time; it may not survive a failover`,
        { cause: error },
      );
    }
    if (STORE_UNAVAILABLE.has(code) || /^E[A-Z]+$/.test(code)) {
      return new WorkerError('STORE_UNAVAILABLE', 'the session store is unavailable; retry later', { cause: error, retryAfterSeconds: 2 });
    }
  }
  if (/connect|connection|closed|ECONNREFUSED|CLUSTERDOWN|TRYAGAIN|timed? ?out|max retries/i.test(message)) {
    return new WorkerError('STORE_UNAVAILABLE', 'the session store is unavailable; retry later', { cause: error, retryAfterSeconds: 2 });
  }
  return new WorkerError('INTERNAL', 'internal error', { cause: error });
}
