// One activation: this worker holds the session's lease (owner = this worker, epoch e) and runs
// its requests one at a time in arrival order. A handover closes the gate (queued requests wait),
// waits for the running one, and then marks the activation ended with where its requests go now.
import type { Lease, SessionRecord } from '../../store/types.ts';
import { RecordedKeys } from '../sessions/types.ts';

/** Why an activation ended, and where the requests it still holds go (a handover's target). */
export interface Ended {
  reason: 'handed-over' | 'released' | 'lost';
  target?: string;
}

export class Activation {
  readonly id: string;
  lease: Lease;
  lastUsedAt = Date.now();
  /** Requests queued or running. */
  pending = 0;
  /** The session as this activation last read or wrote it (at its epoch): while the lease holds no one
   *  else writes, so it is the current state; read only when the store is unreachable (degraded reads). */
  record: SessionRecord | undefined;
  ended: Ended | undefined;
  /** The Idempotency-Keys recorded for the session, when this activation knows them all (a session created here). */
  readonly keys: RecordedKeys;
  /** A migration named this session (a handover was asked for it): its record is not run on warm any more. */
  contested = false;
  /** Whether the worker's registration is fresh (registry.ts): no peer can have taken this worker for gone. */
  private readonly trusted: () => boolean;
  private tail: Promise<void> = Promise.resolve();
  /** The running request's completion, when one runs. */
  private current: Promise<void> | undefined;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(lease: Lease, trusted: () => boolean = () => false, created = false) {
    this.id = lease.sessionId;
    this.lease = lease;
    this.trusted = trusted;
    this.keys = new RecordedKeys(created);
  }

  get epoch(): number {
    return this.lease.epoch;
  }

  /** A handover or drain holds its requests. */
  get holding(): boolean {
    return this.gate !== undefined;
  }

  get idle(): boolean {
    return this.pending === 0;
  }

  /**
   * Queues work behind the session's earlier requests. When its turn comes the work gets the
   * activation's state at that moment: `ended` set means the activation is gone (the work then
   * forwards or refuses instead of running the handler).
   */
  enqueue<T>(work: (ended: Ended | undefined) => Promise<T>): Promise<T> {
    this.pending++;
    const turn = this.tail.then(async () => {
      while (this.gate) await this.gate;
      let finished!: () => void;
      this.current = new Promise<void>((resolve) => (finished = resolve));
      try {
        return await work(this.ended);
      } finally {
        this.current = undefined;
        this.pending--;
        this.lastUsedAt = Date.now();
        finished();
      }
    });
    this.tail = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /** Holds queued requests and waits for the running one; false when it is still running at the deadline. */
  async hold(deadlineMs: number): Promise<boolean> {
    if (!this.gate) this.gate = new Promise<void>((resolve) => (this.openGate = resolve));
    const running = this.current;
    if (!running) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      running.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs - Date.now())))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Lets held requests run again (after a handover, they see `ended`). */
  open(): void {
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  end(ended: Ended): void {
    this.ended ??= ended;
    this.record = undefined;
  }

  /**
   * The record a request may run on without reading the store first (docs/activation.md, "Warm state"):
   * the last one this activation read or wrote, while its lease holds, no migration asked for the
   * session, and the worker's registration is fresh. A write from it still carries the version and the
   * fence, so a stale one is refused by the store and nothing is written.
   */
  warm(now = Date.now()): SessionRecord | undefined {
    if (this.contested || !this.trusted()) return undefined;
    return this.lastKnown(now);
  }

  /** The last record, while this activation is live and its lease unexpired (nobody else can have written). */
  lastKnown(now = Date.now()): SessionRecord | undefined {
    const r = this.record;
    if (!r || this.ended || this.lease.expiresAt <= now || r.owner !== this.lease.owner || r.epoch !== this.lease.epoch) return undefined;
    return r;
  }
}
