// Where sessions live, behind one interface (SessionBackend), one implementation per mode:
//   WorkerLocal  - the legacy behaviour: sessions in this worker's memory only.
//   Dual         - writes go to the store and to memory; reads prefer the store and fall back
//                  to memory; local sessions are copied into the store (on start and switch).
//   Centralized  - the store only (the default): any worker serves any session.
// SessionModes holds the current mode and switches it on a running worker without losing a
// session: it holds new requests at a gate, waits for the in-flight ones, moves the data
// (memory -> store, or store -> memory for the sessions this worker owns), then lets the
// held requests run in the new mode. Response shapes are the same in every mode.
import { randomBytes } from 'node:crypto';
import type { JsonValue, SessionRecord, SessionStore } from '../store/types.ts';
import { WorkerError, errorCode, toWorkerError } from './errors.ts';
import type { HandlerOutcome, JsonObject } from './handlers.ts';

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

export interface ExecuteOptions {
  /**
   * Run the step again on a version conflict (default true: built-in handlers are pure). False
   * for a handler with outside effects: a conflict is answered 409 CONFLICT instead.
   */
  rerunOnConflict?: boolean;
}

export interface ExecuteResult {
  result: JsonValue;
  session: SessionView;
}

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
  /** Attempts of load-run-write on a version conflict before answering CONFLICT. */
  maxAttempts?: number;
  /** The store's import operation; found on the store when omitted. */
  importSession?: ImportFn;
  /** Told of the sessions this worker comes to own (to renew their leases) and of deletions. */
  leases?: LeaseTracker;
}

export interface LeaseTracker {
  held(record: SessionRecord): void;
  dropped(id: string): void;
}

export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

export function viewOf(r: Pick<SessionRecord, 'id' | 'data' | 'version' | 'createdAt' | 'lastAccessedAt' | 'ttlSeconds'>): SessionView {
  return { id: r.id, data: r.data, version: r.version, createdAt: r.createdAt, lastAccessedAt: r.lastAccessedAt, ttlSeconds: r.ttlSeconds };
}

function checkSize(data: JsonValue, maxBytes: number): void {
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

// ---- local memory ---------------------------------------------------------------------

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

function localOf(r: SessionRecord): LocalSession {
  return { ...viewOf(r), anonymous: r.anonymous };
}

// ---- WorkerLocal ----------------------------------------------------------------------

export class LocalBackend implements SessionBackend {
  readonly mode: SessionMode = 'WorkerLocal';
  private readonly o: BackendOptions;

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

  async execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    const maxAttempts = this.o.maxAttempts ?? 10;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const s = this.find(id);
      const version = s.version;
      const outcome = await step(structuredClone(s.data), { id, version, anonymous: s.anonymous });
      const now = this.find(id);
      if (now.version !== version) {
        if (options.rerunOnConflict === false) throw conflictNoRerun(id);
        continue; // changed while the handler ran: run it again
      }
      if (outcome.changed) {
        checkSize(outcome.data, this.o.maxSessionBytes);
        now.data = outcome.data;
        now.version++;
      }
      return { result: outcome.result, session: viewOf(structuredClone(now)) };
    }
    throw new WorkerError('CONFLICT', `session ${id} changed concurrently ${maxAttempts} times; retry`);
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

// ---- Centralized ----------------------------------------------------------------------

const isConflict = (error: unknown) => {
  const code = errorCode(error);
  return code === 'VERSION_CONFLICT' || code === 'CONFLICT';
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A handler that must run once was not re-run after a concurrent write: the client retries. */
function conflictNoRerun(id: string): WorkerError {
  return new WorkerError('CONFLICT', `session ${id} changed while its handler ran; nothing was written, retry`);
}

export class StoreBackend implements SessionBackend {
  readonly mode: SessionMode = 'Centralized';
  protected readonly o: BackendOptions;

  constructor(options: BackendOptions) {
    this.o = options;
  }

  async create(input: { data: JsonObject; ttlSeconds?: number }): Promise<SessionView> {
    checkSize(input.data, this.o.maxSessionBytes);
    try {
      const r = await this.o.store.create({
        pool: this.o.pool,
        data: input.data,
        ttlSeconds: input.ttlSeconds ?? this.o.sessionTtlSeconds,
        owner: this.o.worker,
      });
      this.o.leases?.held(r);
      return viewOf(r);
    } catch (error) {
      throw toWorkerError(error);
    }
  }

  protected async load(id: string): Promise<SessionRecord | null> {
    try {
      // Read as this pool: the store neither returns nor touches another pool's session.
      const r = await this.o.store.get(id, { pool: this.o.pool });
      if (r && r.pool !== this.o.pool) return null; // another pool's session is not ours to serve
      return r;
    } catch (error) {
      throw toWorkerError(error, id);
    }
  }

  async get(id: string): Promise<SessionView> {
    const r = await this.load(id);
    if (!r) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    return viewOf(r);
  }

  /** Load, run, write back with a version check and the epoch read as fence; retry on conflict. */
  protected async executeInStore(
    id: string,
    step: Step,
    onWritten?: (r: SessionRecord) => void,
    options: ExecuteOptions = {},
  ): Promise<ExecuteResult> {
    const maxAttempts = this.o.maxAttempts ?? 10;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const r = await this.load(id);
      if (!r) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
      if (r.movingBy) throw new WorkerError('SESSION_MOVING', `session ${id} is being moved; retry shortly`);
      const outcome = await step(r.data, { id, version: r.version, anonymous: r.anonymous });
      if (!outcome.changed) return { result: outcome.result, session: viewOf(r) };
      checkSize(outcome.data, this.o.maxSessionBytes);
      try {
        const written = await this.o.store.update(id, outcome.data, {
          pool: this.o.pool,
          expectedVersion: r.version,
          fence: { epoch: r.epoch },
        });
        onWritten?.(written);
        return { result: outcome.result, session: viewOf(written) };
      } catch (error) {
        if (!isConflict(error)) throw toWorkerError(error, id);
        if (options.rerunOnConflict === false) throw conflictNoRerun(id);
        await sleep(Math.random() * Math.min(50, 2 ** attempt));
      }
    }
    throw new WorkerError('CONFLICT', `session ${id} changed concurrently ${maxAttempts} times; retry`);
  }

  execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    return this.executeInStore(id, step, undefined, options);
  }

  async executeAnonymous(data: JsonObject, step: Step, ttlSeconds?: number): Promise<JsonValue> {
    checkSize(data, this.o.maxSessionBytes);
    let ran = false;
    try {
      return await this.o.store.withAnonymousSession(
        this.o.pool,
        async (session) => {
          ran = true;
          // The temporary session starts empty; the request's data is its initial state.
          const outcome = await step(data, { id: session.id, version: session.version, anonymous: true });
          return outcome.result;
        },
        { ttlSeconds: ttlSeconds ?? this.o.anonTtlSeconds, owner: this.o.worker },
      );
    } catch (error) {
      if (error instanceof WorkerError) throw error;
      const mapped = toWorkerError(error);
      if (!ran && mapped.code === 'INTERNAL')
        throw new WorkerError('ANONYMOUS_SESSION_FAILED', 'could not create a temporary session', { cause: error });
      throw mapped;
    }
  }

  async delete(id: string): Promise<void> {
    const r = await this.load(id);
    if (!r) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    if (r.movingBy) throw new WorkerError('SESSION_MOVING', `session ${id} is being moved; retry shortly`);
    try {
      this.o.leases?.dropped(id);
      if (!(await this.o.store.delete(id, { pool: this.o.pool }))) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    } catch (error) {
      throw toWorkerError(error, id);
    }
  }
}

// ---- Dual -----------------------------------------------------------------------------

export class DualBackend extends StoreBackend {
  override readonly mode: SessionMode = 'Dual';

  /** Keep a local copy of sessions this worker owns or already holds. */
  private keep(r: SessionRecord): void {
    if (r.owner === this.o.worker || this.o.local.has(r.id)) this.o.local.putIfNewer(localOf(r));
  }

  /** Copies one local session into the store if the store lacks it. */
  async copyToStore(id: string): Promise<boolean> {
    const s = this.o.local.get(id, false);
    if (!s || s.anonymous) return false;
    const importSession = this.o.importSession ?? findImport(this.o.store);
    try {
      if (!importSession) {
        // Without an import operation only sessions the store already has can be brought up to date.
        const stored = await this.o.store.get(id, { touch: false, pool: this.o.pool });
        if (!stored)
          throw new WorkerError('INTERNAL', `the session store has no import operation: cannot copy local session ${id} into it`);
        if (stored.version < s.version) {
          const written = await this.o.store.update(id, s.data, {
            pool: this.o.pool,
            expectedVersion: stored.version,
            fence: { epoch: stored.epoch },
          });
          this.o.local.put(localOf(written));
          return true;
        }
        return false;
      }
      const { created, record } = await importSession({
        id: s.id,
        pool: this.o.pool,
        data: s.data,
        version: s.version,
        createdAt: s.createdAt,
        ttlSeconds: s.ttlSeconds,
        owner: this.o.worker,
      });
      if (created) {
        if (record) this.o.leases?.held(record);
        return true;
      }
      // The id is taken by another pool's session (128 random bits: never by chance): never write over it.
      if (record && record.pool !== this.o.pool) throw new WorkerError('CONFLICT', `session id ${id} belongs to another pool`);
      // The store holds an older copy (an earlier export): bring it up to the local one.
      const stored = record ?? (await this.o.store.get(id, { touch: false, pool: this.o.pool }));
      if (stored && stored.version < s.version) {
        const written = await this.o.store.update(id, s.data, {
          pool: this.o.pool,
          expectedVersion: stored.version,
          fence: { epoch: stored.epoch },
        });
        this.o.local.put(localOf(written));
        return true;
      }
      return false;
    } catch (error) {
      throw toWorkerError(error, id);
    }
  }

  override async create(input: { data: JsonObject; ttlSeconds?: number }): Promise<SessionView> {
    checkSize(input.data, this.o.maxSessionBytes);
    try {
      const r = await this.o.store.create({
        pool: this.o.pool,
        data: input.data,
        ttlSeconds: input.ttlSeconds ?? this.o.sessionTtlSeconds,
        owner: this.o.worker,
      });
      this.o.leases?.held(r);
      this.o.local.put(localOf(r));
      return viewOf(r);
    } catch (error) {
      throw toWorkerError(error);
    }
  }

  override async get(id: string): Promise<SessionView> {
    let r: SessionRecord | null;
    try {
      r = await this.load(id);
    } catch (error) {
      // The store is unreachable: serve the local copy if there is one.
      const local = this.o.local.get(id);
      if (local && error instanceof WorkerError && error.code === 'STORE_UNAVAILABLE') return viewOf(structuredClone(local));
      throw error;
    }
    if (r) {
      this.keep(r);
      return viewOf(r);
    }
    const local = this.o.local.get(id);
    if (!local) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    await this.copyToStore(id);
    return viewOf(structuredClone(local));
  }

  override async execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    if (
      this.o.local.has(id) &&
      !(await this.o.store.exists(id, { pool: this.o.pool }).catch((e: unknown) => Promise.reject(toWorkerError(e, id))))
    )
      await this.copyToStore(id);
    return this.executeInStore(id, step, (written) => this.keep(written), options);
  }

  override async delete(id: string): Promise<void> {
    const hadLocal = this.o.local.delete(id);
    try {
      await super.delete(id);
    } catch (error) {
      if (!(hadLocal && error instanceof WorkerError && error.code === 'SESSION_NOT_FOUND')) throw error;
    }
  }
}

// ---- the mode switch ------------------------------------------------------------------

export interface SwitchReport {
  from: SessionMode;
  to: SessionMode;
  steps: SessionMode[];
  copiedToStore: number;
  pulledFromStore: number;
  durationMs: number;
}

export class SessionModes {
  readonly local: LocalSessions;
  private readonly o: BackendOptions;
  private readonly backends: Record<SessionMode, SessionBackend>;
  private current: SessionMode;
  private inFlight = 0;
  private gate: Promise<void> | undefined;
  private idle: (() => void) | undefined;
  private switching: Promise<SwitchReport> | undefined;

  constructor(options: Omit<BackendOptions, 'local'> & { local?: LocalSessions }, mode: SessionMode) {
    this.local = options.local ?? new LocalSessions();
    this.o = { ...options, local: this.local };
    this.backends = { WorkerLocal: new LocalBackend(this.o), Dual: new DualBackend(this.o), Centralized: new StoreBackend(this.o) };
    this.current = mode;
  }

  get mode(): SessionMode {
    return this.current;
  }

  /** The pool's session TTL: the most a client may ask for. */
  get maxTtlSeconds(): number {
    return this.o.sessionTtlSeconds;
  }

  get switchInProgress(): boolean {
    return this.switching !== undefined;
  }

  /** Runs one request against the current backend; waits while a switch holds the gate. */
  async run<T>(work: (backend: SessionBackend) => Promise<T>): Promise<T> {
    while (this.gate) await this.gate;
    this.inFlight++;
    try {
      return await work(this.backends[this.current]);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
    }
  }

  /** Brings memory in line with the mode at start: pulls owned sessions for WorkerLocal/Dual. */
  async start(): Promise<number> {
    if (this.current === 'Centralized') return 0;
    return this.pullOwned();
  }

  /** Before exit: local sessions are written to the store (owned by this worker) so none is lost. */
  async flushLocal(): Promise<number> {
    if (this.current === 'Centralized') return 0;
    return this.copyAllToStore();
  }

  /** Switches mode one step at a time (WorkerLocal <-> Dual <-> Centralized). */
  switchTo(target: SessionMode, timeoutMs = 30_000): Promise<SwitchReport> {
    if (this.switching) return Promise.reject(new WorkerError('MODE_SWITCH_IN_PROGRESS', 'a mode switch is already in progress'));
    const run = this.doSwitch(target, timeoutMs).finally(() => {
      this.switching = undefined;
    });
    this.switching = run;
    return run;
  }

  private async doSwitch(target: SessionMode, timeoutMs: number): Promise<SwitchReport> {
    const started = Date.now();
    const from = this.current;
    const report: SwitchReport = { from, to: target, steps: [], copiedToStore: 0, pulledFromStore: 0, durationMs: 0 };
    const order = SESSION_MODES.indexOf(target) - SESSION_MODES.indexOf(from);
    while (this.current !== target) {
      const next = SESSION_MODES[SESSION_MODES.indexOf(this.current) + Math.sign(order)] as SessionMode;
      await this.holdRequests(timeoutMs, async () => {
        if (this.current === 'WorkerLocal' && next === 'Dual') {
          this.current = next;
          try {
            report.copiedToStore += await this.copyAllToStore();
          } catch (error) {
            this.current = 'WorkerLocal'; // every session is still in memory: stay in the legacy mode
            throw error;
          }
        } else if (this.current === 'Dual' && next === 'Centralized') {
          report.copiedToStore += await this.copyAllToStore();
          this.current = next;
          this.local.clear();
        } else if (this.current === 'Centralized' && next === 'Dual') {
          report.pulledFromStore += await this.pullOwned();
          this.current = next;
        } else {
          report.pulledFromStore += await this.pullOwned();
          this.current = next;
        }
      });
      report.steps.push(next);
    }
    report.durationMs = Date.now() - started;
    return report;
  }

  /** Closes the gate, waits for in-flight requests (bounded), runs the change, reopens. */
  private async holdRequests(timeoutMs: number, change: () => Promise<void>): Promise<void> {
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      if (this.inFlight > 0) {
        const idle = new Promise<void>((resolve) => (this.idle = resolve));
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new WorkerError('MODE_SWITCH_IN_PROGRESS', `in-flight requests did not finish within ${timeoutMs} ms`)),
            timeoutMs,
          );
        });
        try {
          await Promise.race([idle, timeout]);
        } finally {
          clearTimeout(timer);
          this.idle = undefined;
        }
      }
      await change();
    } finally {
      this.gate = undefined;
      open();
    }
  }

  private async copyAllToStore(): Promise<number> {
    const dual = this.backends.Dual as DualBackend;
    let copied = 0;
    for (const id of this.local.ids()) if (await dual.copyToStore(id)) copied++;
    return copied;
  }

  /** Copies the sessions this worker owns in the store into memory (newer version wins). */
  private async pullOwned(): Promise<number> {
    let ids: string[];
    try {
      ids = await this.o.store.listByOwner(this.o.pool, this.o.worker);
    } catch (error) {
      throw toWorkerError(error);
    }
    let pulled = 0;
    for (let i = 0; i < ids.length; i += 64) {
      const batch = ids.slice(i, i + 64);
      const records = await Promise.all(
        batch.map((id) =>
          this.o.store.get(id, { pool: this.o.pool, touch: false }).catch((e: unknown) => Promise.reject(toWorkerError(e, id))),
        ),
      );
      for (const r of records) {
        if (r && !r.anonymous && r.pool === this.o.pool) {
          this.local.putIfNewer(localOf(r));
          this.o.leases?.held(r);
          pulled++;
        }
      }
    }
    return pulled;
  }
}
