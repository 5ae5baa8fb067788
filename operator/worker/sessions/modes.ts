// SessionModes holds the current mode and switches it on a running worker without losing a session:
// it holds new requests at a gate, waits for the in-flight ones, moves the data (memory -> store, or
// store -> memory for the sessions this worker owns), then lets the held requests run in the new mode.
import { toWorkerError, WorkerError } from '../errors.ts';
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
          this.o.store.get(id, { touch: false, pool: this.o.pool }).catch((e: unknown) => Promise.reject(toWorkerError(e, id))),
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
