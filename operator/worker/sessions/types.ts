// The types and helpers every session backend shares (see backends.ts for the modes).
import { randomBytes } from 'node:crypto';
import type { JsonValue, RecordedReply, SessionRecord, SessionStore } from '../../store/types.ts';
import { WorkerError } from '../errors.ts';
import type { HandlerOutcome, JsonObject } from '../handlers.ts';
import type { LocalSessions } from './local.ts';

export const SESSION_MODES = ['WorkerLocal', 'Dual', 'Centralized'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

/** What a client sees of a session: the same fields in every mode. */
export interface SessionView {
  id: string;
  data: JsonValue;
  version: number;
  createdAt: number;
  lastAccessedAt: number;
  ttlSeconds: number;
}

/** A session to write into the store with its id and version kept (mode switches, drain). */
export interface SessionImport {
  id: string;
  pool: string;
  data: JsonValue;
  version: number;
  createdAt: number;
  ttlSeconds: number;
  owner: string | null;
}

/** The store's optional import operation (create with a given id, if absent). */
export type ImportFn = (input: SessionImport) => Promise<{ created: boolean; record?: SessionRecord }>;

export type Step = (data: JsonValue, session: { id: string; version: number; anonymous: boolean }) => Promise<HandlerOutcome>;

/** A handler runs once per request: a conflict is never answered by running it again (docs/activation.md). */
export interface ExecuteOptions {
  /** The activation's fence: the session must be at this owner and epoch before the handler runs, and the
   *  write carries it; otherwise FENCED (retryable) and the handler does not run / nothing is written. */
  fence?: { owner: string; epoch: number };
  /** Records the reply under this Idempotency-Key, with the session write (same script). */
  idempotencyKey?: string;
  /** The activation's slot for the session as last read or written (degraded reads, docs/activation.md);
   *  `warm()` gives it when a request may run on it without reading the store first (Centralized). */
  remember?: { record: SessionRecord | undefined; warm?(): SessionRecord | undefined; keys?: RecordedKeys };
}

/**
 * The Idempotency-Keys an activation recorded, while it knows every key recorded for its session: it
 * began with the session's creation here (nothing recorded before), and each of its keyed writes
 * either applied (the key is added) or is known not to have (a refusal); an unknown outcome, or more
 * keys than `max`, and it knows nothing (the store is asked, as always). While it holds the lease no
 * other worker records a key for the session (the record scripts check the fence). So a key it does
 * not hold is not recorded, and the store need not be asked before the handler runs.
 */
export class RecordedKeys {
  private keys: Set<string> | undefined;
  private readonly max: number;

  constructor(complete: boolean, max = 32) {
    this.keys = complete ? new Set() : undefined;
    this.max = max;
  }

  /** False when the key is surely not recorded for the session. */
  mayHave(key: string): boolean {
    return this.keys === undefined || this.keys.has(key);
  }

  recorded(key: string): void {
    this.keys?.add(key);
    if (this.keys && this.keys.size > this.max) this.keys = undefined;
  }

  /** A keyed write's outcome is unknown: from now on the store is asked. */
  unknown(): void {
    this.keys = undefined;
  }
}

/** The body of a session execute's 200 reply (recorded as such for an Idempotency-Key). */
export function executeReplyBody(sessionId: string, version: number, result: JsonValue): { [key: string]: JsonValue } {
  return { sessionId, version, result };
}

/** The handler's result and the session after it; or, for an Idempotency-Key already recorded, the
 *  recorded reply (the handler did not run). */
export type ExecuteResult = { result: JsonValue; session: SessionView } | { replayed: RecordedReply };

export interface SessionBackend {
  readonly mode: SessionMode;
  create(input: { data: JsonObject; ttlSeconds?: number }): Promise<SessionView>;
  /** The session, or a SESSION_NOT_FOUND / SESSION_NOT_ON_WORKER error. */
  get(id: string): Promise<SessionView>;
  execute(id: string, step: Step, options?: ExecuteOptions): Promise<ExecuteResult>;
  executeAnonymous(data: JsonObject, step: Step, ttlSeconds?: number): Promise<JsonValue>;
  delete(id: string): Promise<void>;
}

export interface BackendOptions {
  pool: string;
  worker: string;
  store: SessionStore;
  local: LocalSessions;
  sessionTtlSeconds: number;
  anonTtlSeconds: number;
  maxSessionBytes: number;
  /** The store's import operation; found on the store when omitted. */
  importSession?: ImportFn;
  /** Told of the sessions this worker comes to own (its activations) and of deletions. */
  leases?: LeaseTracker;
  /** How long an Idempotency-Key's reply is kept, and how many per session (store defaults when absent). */
  idempotency?: { keepMs: number; maxEntries: number };
  /** Centralized: run a request on the activation's warm record without reading the store first
   *  (docs/activation.md, "Warm writes"). Off by default and in workers: a migration's moving mark is
   *  not known to the activation, so a warm request during a mark runs its handler and is then refused,
   *  and its retry runs it again (seen once in the chaos e2e). */
  warmWrites?: boolean;
}

export interface LeaseTracker {
  /** `created`: the session was just created here, so no Idempotency-Key can be recorded for it yet. */
  held(record: SessionRecord, created?: boolean): void;
  dropped(id: string): void;
}

export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

export function viewOf(r: Pick<SessionRecord, 'id' | 'data' | 'version' | 'createdAt' | 'lastAccessedAt' | 'ttlSeconds'>): SessionView {
  return { id: r.id, data: r.data, version: r.version, createdAt: r.createdAt, lastAccessedAt: r.lastAccessedAt, ttlSeconds: r.ttlSeconds };
}

export function checkSize(data: JsonValue, maxBytes: number): void {
  const bytes = Buffer.byteLength(JSON.stringify(data));
  if (bytes > maxBytes) throw new WorkerError('SESSION_TOO_LARGE', `session data is ${bytes} bytes, over the limit of ${maxBytes}`);
}

/** Finds the store's import operation, whatever the store engineer named it. */
export function findImport(store: SessionStore): ImportFn | undefined {
  const s = store as unknown as Record<string, unknown>;
  for (const name of ['importSession', 'import', 'put']) {
    const fn = s[name];
    if (typeof fn === 'function') return (input) => (fn as ImportFn).call(store, input);
  }
  return undefined;
}
