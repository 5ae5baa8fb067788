// SessionModes holds the current mode and switches it on a running worker without losing a session:
// it holds new requests at a gate, waits for the in-flight ones, moves the data (memory -> store, or
// store -> memory for the sessions this worker owns), then lets the held requests run in the new mode.
// In WorkerLocal a session lives in one place at a time: one worker's memory (its activation there), or
// the store when no worker holds it (written by a drain, or left from Dual): a worker that takes a
// session into memory deletes its store copy, so no stale copy can come back (docs/activation.md).
import type { SessionRecord } from '../../store/types.ts';
import { sessionMoving, toWorkerError, WorkerError } from '../errors.ts';
import { LocalBackend, LocalSessions, localOf } from './local.ts';
import { DualBackend, StoreBackend } from './store-backend.ts';
import { SESSION_MODES, type BackendOptions, type SessionBackend, type SessionMode } from './types.ts';

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
  /** The step being made while the gate is closed. */
  private step: { from: SessionMode; to: SessionMode } | undefined;

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

  /** Whether this worker's memory is where its sessions live: WorkerLocal, or a step between WorkerLocal
   *  and Dual in progress (the sessions are in memory while they are copied or pulled). */
  get memoryHolds(): boolean {
    return this.current === 'WorkerLocal' || this.step?.from === 'WorkerLocal' || this.step?.to === 'WorkerLocal';
  }

  /** Resolves once no switch holds the gate: a request is routed in the mode it will run in. */
  async settled(): Promise<void> {
    while (this.gate) await this.gate;
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
    return this.current === 'WorkerLocal' ? this.takeOwned() : this.pullOwned();
  }

  /** Before exit: local sessions are written to the store (owned by this worker) so none is lost. In
   *  WorkerLocal the store then holds them and memory no longer does: another worker may take them. */
  async flushLocal(): Promise<number> {
    // A switch that started before the drain ends first: its moves between memory and the store are then
    // complete, and the flush reads memory in the mode the worker will exit in.
    await this.switching?.catch(() => undefined);
    if (this.current === 'Centralized') return 0;
    const copied = await this.copyAllToStore();
    if (this.current === 'WorkerLocal') this.local.clear();
    return copied;
  }

  /** WorkerLocal: takes a session the store holds into this worker's memory and deletes the store copy.
   *  The caller holds the session's lease (claimed or taken over), so no other worker loads it meanwhile.
   *  It runs as a request does (a switch waits for it, and it waits for a switch), and only in WorkerLocal:
   *  a worker that left WorkerLocal while the caller read the store must not delete the store copy, or in
   *  Dual the session would live in this worker's memory alone, where no read looks (SESSION_MOVING). */
  takeIntoMemory(record: SessionRecord): Promise<void> {
    return this.run(async () => {
      if (this.current !== 'WorkerLocal') throw sessionMoving(record.id, 'was not taken: this worker changed session mode');
      await this.moveIntoMemory(record);
    });
  }

  /** takeIntoMemory's work, for a caller that already holds the gate (a switch to WorkerLocal). */
  private async moveIntoMemory(record: SessionRecord): Promise<void> {
    this.local.put(localOf(record));
    try {
      await this.o.store.forgetRecords?.(record.id, { pool: this.o.pool });
      await this.o.store.delete(record.id, { pool: this.o.pool });
    } catch (error) {
      throw toWorkerError(error, record.id);
    }
    this.o.leases?.dropped(record.id);
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
      await this.holdRequests(
        timeoutMs,
        async () => {
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
            report.pulledFromStore += await this.takeOwned();
            this.current = next;
          }
        },
        { from: this.current, to: next },
      );
      report.steps.push(next);
    }
    report.durationMs = Date.now() - started;
    return report;
  }

  /** Closes the gate, waits for in-flight requests (bounded), runs the change, reopens. */
  private async holdRequests(timeoutMs: number, change: () => Promise<void>, step: { from: SessionMode; to: SessionMode }): Promise<void> {
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    this.step = step;
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
      this.step = undefined;
      open();
    }
  }

  private async copyAllToStore(): Promise<number> {
    const dual = this.backends.Dual as DualBackend;
    let copied = 0;
    for (const id of this.local.ids()) if (await dual.copyToStore(id)) copied++;
    return copied;
  }

  /** The records of the sessions this worker owns in the store (its activations and its drain's copies). */
  private async ownedRecords(): Promise<SessionRecord[]> {
    let ids: string[];
    try {
      ids = await this.o.store.listByOwner(this.o.pool, this.o.worker);
    } catch (error) {
      throw toWorkerError(error);
    }
    const owned: SessionRecord[] = [];
    for (let i = 0; i < ids.length; i += 64) {
      const records = await Promise.all(ids.slice(i, i + 64).map((id) => this.read(id)));
      for (const r of records) if (r && !r.anonymous && r.pool === this.o.pool && r.owner === this.o.worker) owned.push(r);
    }
    return owned;
  }

  private read(id: string): Promise<SessionRecord | null> {
    return this.o.store.get(id, { touch: false, pool: this.o.pool }).catch((e: unknown) => Promise.reject(toWorkerError(e, id)));
  }

  /** Copies the sessions this worker owns in the store into memory (newer version wins). */
  private async pullOwned(): Promise<number> {
    const owned = await this.ownedRecords();
    for (const r of owned) {
      this.local.putIfNewer(localOf(r));
      this.o.leases?.held(r);
    }
    return owned.length;
  }

  /** Entering WorkerLocal: the sessions the store names this worker owner move into memory (their store
   *  copies deleted); a local copy of a session the store holds for another worker or for none is stale
   *  (every Dual write goes to the store) and is dropped: that session stays in the store until a worker
   *  takes it on its next request. Local sessions the store lacks stay. */
  private async takeOwned(): Promise<number> {
    const owned = await this.ownedRecords();
    const mine = new Set(owned.map((r) => r.id));
    const others = this.local.ids().filter((id) => !mine.has(id));
    for (let i = 0; i < others.length; i += 64) {
      const records = await Promise.all(others.slice(i, i + 64).map((id) => this.read(id)));
      for (const r of records) if (r && r.pool === this.o.pool) this.local.delete(r.id);
    }
    for (const r of owned) await this.moveIntoMemory(r);
    return owned.length;
  }
}
