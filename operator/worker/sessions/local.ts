// WorkerLocal, the legacy mode: sessions in this worker's memory only (LocalSessions), with sliding TTLs.
import type { JsonValue, SessionRecord } from '../../store/types.ts';
import { IDEMPOTENCY_DEFAULTS } from '../../store/idempotency.ts';
import { WorkerError } from '../errors.ts';
import type { JsonObject } from '../handlers.ts';
import { LocalReplies } from './local-replies.ts';
import { SessionQueue } from './queue.ts';
import {
  checkSize,
  executeReplyBody,
  newSessionId,
  viewOf,
  type BackendOptions,
  type ExecuteOptions,
  type ExecuteResult,
  type SessionBackend,
  type SessionMode,
  type SessionView,
  type Step,
} from './types.ts';

export interface LocalSession extends SessionView {
  anonymous: boolean;
}

/** Sessions in this worker's memory, with sliding TTLs. */
export class LocalSessions {
  private readonly sessions = new Map<string, LocalSession>();
  /** Idempotency records by session id: they go when their session goes. */
  private readonly replies = new Map<string, LocalReplies>();

  get size(): number {
    return this.sessions.size;
  }

  ids(): string[] {
    return [...this.sessions.keys()];
  }

  private expired(s: LocalSession, now: number): boolean {
    return s.lastAccessedAt + s.ttlSeconds * 1000 <= now;
  }

  /** The session (sliding its TTL when touch is set), or undefined when absent or expired. */
  get(id: string, touch = true): LocalSession | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const now = Date.now();
    if (this.expired(s, now)) {
      this.delete(id);
      return undefined;
    }
    if (touch) s.lastAccessedAt = now;
    return s;
  }

  has(id: string): boolean {
    return this.get(id, false) !== undefined;
  }

  put(session: LocalSession): void {
    this.sessions.set(session.id, structuredClone(session));
  }

  /** Keeps the newer of the local copy and a record (by version). */
  putIfNewer(record: LocalSession): void {
    const current = this.get(record.id, false);
    if (!current || current.version <= record.version) this.put(record);
  }

  /** The session's idempotency records (made on first use; call only for a session held here). */
  repliesOf(id: string): LocalReplies {
    let replies = this.replies.get(id);
    if (!replies) this.replies.set(id, (replies = new LocalReplies()));
    return replies;
  }

  delete(id: string): boolean {
    this.replies.delete(id);
    return this.sessions.delete(id);
  }

  clear(): void {
    this.sessions.clear();
    this.replies.clear();
  }

  /** Removes expired sessions; returns how many. */
  sweep(): number {
    const now = Date.now();
    let removed = 0;
    for (const [id, s] of this.sessions) {
      if (this.expired(s, now)) {
        this.delete(id);
        removed++;
      }
    }
    return removed;
  }
}

export function localOf(r: SessionRecord): LocalSession {
  return { ...viewOf(r), anonymous: r.anonymous };
}

// ---- WorkerLocal ----------------------------------------------------------------------

export class LocalBackend implements SessionBackend {
  readonly mode: SessionMode = 'WorkerLocal';
  private readonly o: BackendOptions;
  private readonly queue = new SessionQueue();

  constructor(options: BackendOptions) {
    this.o = options;
  }

  private find(id: string): LocalSession {
    const s = this.o.local.get(id);
    if (!s) throw new WorkerError('SESSION_NOT_ON_WORKER', `session ${id} not found on this worker`);
    return s;
  }

  async create(input: { data: JsonObject; ttlSeconds?: number }): Promise<SessionView> {
    checkSize(input.data, this.o.maxSessionBytes);
    const now = Date.now();
    const session: LocalSession = {
      id: newSessionId(),
      data: structuredClone(input.data),
      version: 1,
      createdAt: now,
      lastAccessedAt: now,
      ttlSeconds: input.ttlSeconds ?? this.o.sessionTtlSeconds,
      anonymous: false,
    };
    this.o.local.put(session);
    return viewOf(session);
  }

  async get(id: string): Promise<SessionView> {
    return viewOf(structuredClone(this.find(id)));
  }

  /** Runs the handler once; requests to one session run one at a time (a per-session queue), so the
   *  session cannot change while its handler runs. A request whose Idempotency-Key has a recorded reply
   *  gets that reply, and the handler does not run. */
  execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    const { idempotencyKey } = options;
    const limits = this.o.idempotency ?? IDEMPOTENCY_DEFAULTS;
    return this.queue.run(id, async () => {
      const s = this.find(id);
      const keyed = idempotencyKey === undefined ? undefined : { key: idempotencyKey, replies: this.o.local.repliesOf(id) };
      const recorded = keyed?.replies.lookup(keyed.key, limits);
      if (recorded) return { replayed: { status: 200, body: executeReplyBody(id, recorded.version, recorded.result) } };
      const version = s.version;
      const outcome = await step(structuredClone(s.data), { id, version, anonymous: s.anonymous });
      const now = this.find(id);
      // Only a delete or a mode switch's copy can change it meanwhile: never run the handler again.
      if (now.version !== version)
        throw new WorkerError('CONFLICT', `session ${id} changed while its handler ran; nothing was written, retry`);
      if (outcome.changed) {
        checkSize(outcome.data, this.o.maxSessionBytes);
        now.data = outcome.data;
        now.version++;
      }
      keyed?.replies.record(keyed.key, { at: Date.now(), version: now.version, result: outcome.result }, limits);
      return { result: outcome.result, session: viewOf(structuredClone(now)) };
    });
  }

  async executeAnonymous(data: JsonObject, step: Step, ttlSeconds?: number): Promise<JsonValue> {
    checkSize(data, this.o.maxSessionBytes);
    const now = Date.now();
    const session: LocalSession = {
      id: newSessionId(),
      data,
      version: 1,
      createdAt: now,
      lastAccessedAt: now,
      ttlSeconds: ttlSeconds ?? this.o.anonTtlSeconds,
      anonymous: true,
    };
    this.o.local.put(session);
    try {
      const outcome = await step(structuredClone(data), { id: session.id, version: session.version, anonymous: true });
      return outcome.result;
    } finally {
      this.o.local.delete(session.id);
    }
  }

  async delete(id: string): Promise<void> {
    this.find(id);
    this.o.local.delete(id);
  }
}
