// Centralized (the store only; the default) and Dual (the store and this worker's memory: writes go to
// both, reads prefer the store and fall back to memory; local sessions are copied into the store).
import type { JsonValue, RecordedReply, SessionRecord } from '../../store/types.ts';
import { WorkerError, errorCode, toWorkerError } from '../errors.ts';
import type { JsonObject } from '../handlers.ts';
import { localOf } from './local.ts';
import {
  checkSize,
  executeReplyBody,
  findImport,
  viewOf,
  type BackendOptions,
  type ExecuteOptions,
  type ExecuteResult,
  type SessionBackend,
  type SessionMode,
  type SessionView,
  type Step,
} from './types.ts';

const isConflict = (error: unknown) => {
  const code = errorCode(error);
  return code === 'VERSION_CONFLICT' || code === 'CONFLICT';
};

function fenced(id: string): WorkerError {
  return new WorkerError('FENCED', `session ${id} is no longer held by this activation (moved or lapsed); nothing was written, retry`);
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
      this.o.leases?.held(r, true);
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

  /** The reply recorded for an Idempotency-Key, if any (looked up beside the read, same round trip). */
  private recorded(id: string, key: string | undefined): Promise<RecordedReply | undefined> | undefined {
    if (key === undefined || !this.o.store.recordedReply) return undefined;
    return this.o.store
      .recordedReply(id, key, { pool: this.o.pool, ...(this.o.idempotency ? { keepMs: this.o.idempotency.keepMs } : {}) })
      .catch((error: unknown) => Promise.reject(toWorkerError(error, id)));
  }

  /**
   * Load, run the handler once, write back with the version read and the fence. With an activation's
   * fence the session must be at its owner and epoch before the handler runs; a write refused for a
   * version or a fence means the activation was lost: FENCED (retryable), never a second run.
   * With `warm` (Centralized) the activation's warm record replaces the read (docs/activation.md,
   * "Warm state"): a write is sent without reading first, still with the version and the fence; a
   * handler that changed nothing is followed by a read (it slides the TTL as the read before would
   * have) that must find the session as the warm record has it.
   * With `knownKeys` (Centralized) a key the activation knows is not recorded is not looked up, warm
   * record or not: the read (or the warm record's write) still checks the fence before anything counts.
   */
  protected async executeInStore(
    id: string,
    step: Step,
    onWritten?: (r: SessionRecord) => void,
    options: ExecuteOptions = {},
    warm = false,
    knownKeys = false,
  ): Promise<ExecuteResult> {
    const { fence, idempotencyKey, remember } = options;
    const warmRecord = warm && fence ? remember?.warm?.() : undefined;
    // Both reads leave at once (one round trip); a recorded reply wins over whatever the read found.
    // A key the activation knows is not recorded (RecordedKeys: it began with the session's creation
    // here) is not looked up: no other worker records one while the fence holds, and a lost fence is
    // refused (FENCED) before the handler runs, by the read below or, on a warm record, by the write.
    // One command fewer per keyed execute. Dual asks the store (a WorkerLocal peer may hold the session).
    const keys = fence && (warmRecord || knownKeys) ? remember?.keys : undefined;
    const lookup = idempotencyKey !== undefined && keys && !keys.mayHave(idempotencyKey) ? undefined : this.recorded(id, idempotencyKey);
    const loading = warmRecord ? Promise.resolve(warmRecord) : this.load(id);
    if (lookup) {
      loading.catch(() => undefined);
      const replayed = await lookup;
      if (replayed) return { replayed };
    }
    const r = await loading;
    if (!r) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    if (r.movingBy) throw new WorkerError('SESSION_MOVING', `session ${id} is being moved; retry shortly`);
    if (fence && (r.owner !== fence.owner || r.epoch !== fence.epoch)) throw fenced(id);
    const outcome = await step(r.data, { id, version: r.version, anonymous: r.anonymous });
    const record = (version: number) =>
      idempotencyKey === undefined
        ? undefined
        : { key: idempotencyKey, reply: { status: 200, body: executeReplyBody(id, version, outcome.result) }, ...this.o.idempotency };
    const store = this.o.store;
    try {
      if (!outcome.changed) {
        const rec = record(r.version);
        const [recordedOk, current] = await Promise.all([
          rec && store.recordOutcome
            ? store.recordOutcome(id, fence ?? { owner: r.owner ?? '', epoch: r.epoch }, rec, { pool: this.o.pool })
            : true,
          warmRecord ? this.load(id) : r,
        ]);
        if (!recordedOk) throw fenced(id);
        if (rec) remember?.keys?.recorded(rec.key);
        // Run on the warm record and nothing recorded: the session must still be as that record has it
        // (a recorded outcome was checked against the fence by its script).
        const same = current && current.version === r.version && current.owner === r.owner && current.epoch === r.epoch;
        if (!same && !rec) throw fenced(id);
        // Handlers get a copy of the data (built-ins) or its JSON (the contract): r is still what is stored.
        if (remember) remember.record = same ? current : undefined;
        return { result: outcome.result, session: viewOf(same ? current : r) };
      }
      checkSize(outcome.data, this.o.maxSessionBytes);
      const writeFence = { epoch: fence?.epoch ?? r.epoch, ...(fence ? { owner: fence.owner } : {}) };
      const rec = record(r.version + 1);
      const written =
        rec && store.updateRecorded
          ? await store.updateRecorded(id, outcome.data, { pool: this.o.pool, expectedVersion: r.version, fence: writeFence }, rec)
          : await store.update(id, outcome.data, { pool: this.o.pool, expectedVersion: r.version, fence: writeFence });
      onWritten?.(written);
      if (rec) remember?.keys?.recorded(rec.key);
      if (remember) remember.record = written;
      return { result: outcome.result, session: viewOf(written) };
    } catch (error) {
      if (remember) remember.record = undefined;
      // After any failure of a keyed request its key may or may not be recorded: the store is asked from now on.
      if (idempotencyKey !== undefined) remember?.keys?.unknown();
      if (error instanceof WorkerError) throw error;
      if (isConflict(error) || errorCode(error) === 'FENCED') throw fenced(id);
      throw toWorkerError(error, id);
    }
  }

  execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    return this.executeInStore(id, step, undefined, options, this.o.warmWrites === true, true);
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
      await this.o.store.forgetRecords?.(id, { pool: this.o.pool });
      if (!(await this.o.store.delete(id, { pool: this.o.pool }))) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    } catch (error) {
      throw toWorkerError(error, id);
    }
  }
}

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
    // Every local session went into the store when this worker entered Dual, so a local copy the store
    // lacks is stale: a WorkerLocal peer took the session into its memory (a switch in progress), or it
    // was deleted. It is dropped, never served nor written back (the server asks the peers next).
    this.o.local.delete(id);
    throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
  }

  override async execute(id: string, step: Step, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    // A session the store lacks is not run from a local copy (stale, see get): SESSION_NOT_FOUND.
    return this.executeInStore(id, step, (written) => this.keep(written), options).catch((error: unknown) => {
      if (errorCode(error) === 'SESSION_NOT_FOUND') this.o.local.delete(id);
      throw error;
    });
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
