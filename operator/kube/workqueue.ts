// A de-duplicating work queue of string keys, the heart of a level-triggered controller
// (after client-go's workqueue): a key is queued at most once; a key being processed is never
// handed out again until done(), and if it was re-added meanwhile it runs once more after;
// different keys run in parallel. Failed keys come back after a per-key exponential backoff
// with jitter; forget() resets it after a success.
import type { Registry } from 'prom-client';
import { backoffDelay, realClock, type Clock, type TimerHandle } from './clock.ts';
import { counter, gauge } from './metrics.ts';

export interface BackoffOptions {
  /** First retry delay. Default 250 ms. */
  baseMs: number;
  /** Cap of the delay. Default 60 s. */
  maxMs: number;
  /** Relative jitter, 0..1: the delay is scaled by 1 ± jitter. Default 0.2. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 60_000, jitter: 0.2 };

export interface WorkQueueOptions {
  /** Label of this queue's metrics, e.g. "sessionpool". */
  name: string;
  backoff?: Partial<BackoffOptions>;
  clock?: Clock;
  random?: () => number;
  registry?: Registry;
}

export class WorkQueue {
  readonly name: string;
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys in flight re-added by addFirst: they go to the front after done(). */
  private readonly urgent = new Set<string>();
  private readonly delayed = new Map<string, { at: number; handle: TimerHandle }>();
  private readonly failures = new Map<string, number>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private readonly backoff: BackoffOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private shuttingDown = false;
  private readonly depthGauge;
  private readonly inFlightGauge;
  private readonly addsCounter;
  private readonly retriesCounter;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.depthGauge = gauge(options.registry, 'spo_operator_workqueue_depth', 'Keys waiting in the work queue', ['queue']);
    this.inFlightGauge = gauge(options.registry, 'spo_operator_workqueue_in_flight', 'Keys being processed', ['queue']);
    this.addsCounter = counter(options.registry, 'spo_operator_workqueue_adds_total', 'Keys added to the work queue', ['queue']);
    this.retriesCounter = counter(options.registry, 'spo_operator_workqueue_retries_total', 'Keys re-added after an error', ['queue']);
    this.updateGauges();
  }

  /**
   * Queues the key unless it is already queued; a key being processed runs once more afterwards.
   * A pending delayed add of the key stays (as in client-go): a requeueAfter is never lost.
   */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addsCounter.inc({ queue: this.name });
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /**
   * Like add(), but the key goes to the front of the queue (or moves there if it is queued):
   * for changes someone waits on (a spec edit), ahead of routine work (status refreshes).
   */
  addFirst(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) {
      const at = this.queue.indexOf(key);
      if (at > 0) {
        this.queue.splice(at, 1);
        this.queue.unshift(key);
      }
      return;
    }
    this.dirty.add(key);
    this.addsCounter.inc({ queue: this.name });
    if (this.processing.has(key)) {
      this.urgent.add(key); // runs again first after done()
      return;
    }
    this.push(key, true);
  }

  /** Adds the key after ms; an earlier pending delay for the key wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  /** Adds the key after its per-key backoff; each call without forget() doubles the delay. */
  addRateLimited(key: string): number {
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    this.retriesCounter.inc({ queue: this.name });
    const delay = backoffDelay(attempt, this.backoff, this.random);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's backoff (call after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times in a row the key failed. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves with the next key, marking it in flight, or undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks the key processed; if it was re-added meanwhile it goes back on the queue. */
  done(key: string): void {
    this.processing.delete(key);
    const first = this.urgent.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key, first);
    this.updateGauges();
    if (this.processing.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Whether the key waits in the queue now (added, not yet handed out). */
  isQueued(key: string): boolean {
    return this.dirty.has(key) && !this.processing.has(key);
  }

  /** Keys waiting to be processed (not counting delayed ones). */
  depth(): number {
    return this.queue.length;
  }

  /** Keys being processed now. */
  inFlight(): number {
    return this.processing.size;
  }

  /** Keys waiting for a delay or backoff to expire. */
  delayedCount(): number {
    return this.delayed.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops handing out keys, drops queued and delayed ones, and resolves once every key in
   * flight is done (or after timeoutMs, if given, returning false).
   */
  async shutdown(timeoutMs?: number): Promise<boolean> {
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.clock.clearTimeout(handle);
    this.delayed.clear();
    this.queue.length = 0;
    for (const getter of this.getters.splice(0)) getter(undefined);
    this.updateGauges();
    if (this.processing.size === 0) return true;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    if (timeoutMs === undefined) return idle;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return result;
  }

  private push(key: string, first = false): void {
    const getter = this.getters.shift();
    if (getter) {
      getter(this.take(key));
    } else if (first) {
      this.queue.unshift(key);
      this.updateGauges();
    } else {
      this.queue.push(key);
      this.updateGauges();
    }
  }

  private take(key: string): string {
    this.dirty.delete(key);
    this.processing.add(key);
    this.updateGauges();
    return key;
  }

  private updateGauges(): void {
    this.depthGauge.set({ queue: this.name }, this.queue.length);
    this.inFlightGauge.set({ queue: this.name }, this.processing.size);
  }
}
