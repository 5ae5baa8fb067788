// The periodic store sweep of every pool (spec.sessions.sweepIntervalSeconds), apart from the
// reconcile: one timer, armed for the earliest pool due, runs the sweeps due (a few at a time)
// and re-arms. No reconcile and no apiserver call per sweep, so an idle operator only makes the
// sweeps' Redis calls. A pool's first sweep comes at a random point of its first interval, so
// pools created together do not all sweep in the same second.
import { realClock, type Clock, type TimerHandle } from '../../kube/clock.ts';

export interface SweepScheduler {
  /** Sweeps the pool every intervalMs from now on (idempotent; a new interval applies at once). */
  schedule(key: string, intervalMs: number): void;
  forget(key: string): void;
}

export interface SweeperOptions {
  /** Sweeps one pool; errors are the callback's to log (they never stop the schedule). */
  sweep: (key: string) => Promise<void>;
  /** Sweeps run in parallel at most. Default 4. */
  concurrency?: number;
  clock?: Clock;
  random?: () => number;
}

interface Due {
  at: number;
  intervalMs: number;
}

export class Sweeper implements SweepScheduler {
  private readonly options: SweeperOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly due = new Map<string, Due>();
  private timer: { handle: TimerHandle; at: number } | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;

  constructor(options: SweeperOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
  }

  schedule(key: string, intervalMs: number): void {
    const now = this.clock.now();
    const existing = this.due.get(key);
    if (existing?.intervalMs === intervalMs) return;
    const at = existing ? Math.min(existing.at, now + intervalMs) : now + Math.floor(this.random() * intervalMs);
    this.due.set(key, { at, intervalMs });
    this.arm();
  }

  forget(key: string): void {
    this.due.delete(key);
  }

  /** Pools scheduled (tests, metrics). */
  size(): number {
    return this.due.size;
  }

  start(): void {
    this.running = true;
    this.arm();
  }

  /** Stops the timer and waits for the sweeps in flight; the schedule is dropped. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
    this.due.clear();
    await this.ticking;
  }

  private arm(): void {
    if (!this.running || this.ticking) return;
    let next = Infinity;
    for (const d of this.due.values()) if (d.at < next) next = d.at;
    if (next === Infinity) return;
    if (this.timer && this.timer.at <= next) return;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    const handle = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.ticking = this.tick().finally(() => {
          this.ticking = undefined;
          this.arm();
        });
      },
      Math.max(0, next - this.clock.now()),
    );
    this.timer = { handle, at: next };
  }

  private async tick(): Promise<void> {
    const now = this.clock.now();
    const keys: string[] = [];
    for (const [key, d] of this.due) {
      if (d.at > now) continue;
      keys.push(key);
      d.at = now + d.intervalMs; // the next one counts from now: a slow sweep never stacks
    }
    const limit = Math.max(1, this.options.concurrency ?? 4);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (this.running && next < keys.length) {
        const key = keys[next++] as string;
        await this.options.sweep(key).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, keys.length) }, lane));
  }
}
