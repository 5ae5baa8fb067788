// WorkerLocal, the legacy mode: sessions in this worker's memory only (LocalSessions), with sliding TTLs.
import type { JsonValue, SessionRecord } from '../../store/types.ts';
import { WorkerError } from '../errors.ts';
import type { JsonObject } from '../handlers.ts';
import { SessionQueue } from './queue.ts';
import {
  checkSize,
  newSessionId,
  viewOf,
  type BackendOptions,
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
      this.sessions.delete(id);
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

  delete(id: string): boolean {
    return this.sessions.delete(id);
  }

  clear(): void {
    this.sessions.clear();
  }

  /** Removes expired sessions; returns how many. */
  sweep(): number {
    const now = Date.now();
    let removed = 0;
    for (const [id, s] of this.sessions) {
      if (this.expired(s, now)) {
        this.sessions.delete(id);
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
   *  session cannot change while its handler runs. */
  execute(id: string, step: Step): Promise<ExecuteResult> {
    return this.queue.run(id, async () => {
      const s = this.find(id);
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
