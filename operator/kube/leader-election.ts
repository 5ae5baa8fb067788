// Leader election on a coordination.k8s.io/v1 Lease (client-node has none), after client-go's
// leaderelection package:
// - A candidate reads the Lease; it takes it when it is free (no holder) or expired, by a
//   replace carrying the resourceVersion it read, so of two candidates exactly one wins (the
//   other gets 409). A missing Lease is created (409 again if someone was first).
// - Expiry is judged by when this process *observed* the record change, plus the record's
//   leaseDurationSeconds, never by comparing our clock with the holder's renewTime (clock skew
//   would allow two leaders). A record whose renewTime is older than two lease durations is
//   expired at once (a new standby need not wait out a long-dead leader).
// - The leader renews every retryPeriod; if it has not renewed for renewDeadline it steps down
//   (onStoppedLeading) before any standby can take over (lease duration > renew deadline).
// - A graceful stop() first stops the work (awaits onStoppedLeading), then releases the Lease
//   (empty holder, 1 s duration) so a standby takes over at its next try (≤ retryPeriod).
// Defaults (leader-election-timing.ts, the one source): lease 10 s, renew deadline 7 s,
// retry 2 s. The worst-case takeover after the leader's death is lease + retry (observation
// lag) + one request ≈ 12-13 s, inside the 15 s the issue asks; client-go's 15/10/2 would give
// up to 17 s. See docs/operator-internals.md.
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../observability/logger.ts';
import { realClock, sleep, type Clock, type TimerHandle } from './clock.ts';
import { errorMessage, isConflict, isNotFound } from './errors.ts';
import { gauge } from './metrics.ts';

export type LeaseApi = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

export interface LeaderElectorOptions {
  api: LeaseApi;
  namespace: string;
  /** Lease name, e.g. "session-pool-operator". */
  name: string;
  /** Unique per process, e.g. the pod name. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Per API call; a call that takes longer counts as failed. Default 5 s. */
  requestTimeoutMs?: number;
  /** Called when this process becomes leader; the signal aborts when it stops leading. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called when leadership ends (lost renewal, or stop()); awaited before a graceful release. */
  onStoppedLeading?: () => void | Promise<void>;
  /** Called when the observed holder changes (including to this process, or to none). */
  onNewLeader?: (identity: string | undefined) => void;
  registry?: Registry;
  logger?: Logger;
  clock?: Clock;
  random?: () => number;
}

import { DEFAULT_LEASE_DURATION_MS, DEFAULT_RENEW_DEADLINE_MS, DEFAULT_RETRY_PERIOD_MS } from './leader-election-timing.ts';

export {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  TAKEOVER_BOUND_MS,
} from './leader-election-timing.ts';

function toMillis(value: Date | string | undefined): number | undefined {
  if (value === undefined || value === null) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

export class LeaderElector {
  private readonly options: LeaderElectorOptions;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly requestTimeoutMs: number;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly leaderGauge;
  private running = false;
  private leading = false;
  private stopSignal = new AbortController();
  private leadSignal: AbortController | undefined;
  private loop: Promise<void> | undefined;
  /** The last record we read or wrote, with when we first saw its resourceVersion. */
  private observed: { lease: V1Lease; at: number } | undefined;
  private lastRenew = 0;
  private deadlineTimer: TimerHandle | undefined;
  private lastHolder: string | undefined = '';

  constructor(options: LeaderElectorOptions) {
    this.options = options;
    this.leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
    if (this.leaseDurationMs % 1000 !== 0) throw new Error('leaseDurationMs must be whole seconds (the Lease stores seconds)');
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log =
      options.logger ?? createLogger('leader-election', { lease: `${options.namespace}/${options.name}`, identity: options.identity });
    this.leaderGauge = gauge(options.registry, 'spo_operator_leader', '1 while this process holds the leader Lease', ['lease']);
    this.leaderGauge.set({ lease: options.name }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last observed in the Lease (undefined when free or unknown). */
  currentLeader(): string | undefined {
    return this.observed?.lease.spec?.holderIdentity || undefined;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopSignal = new AbortController();
    this.loop = this.run().catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'leader election loop crashed'));
  }

  /**
   * Stops campaigning. When leading: stops leading (awaits onStoppedLeading), then releases the
   * Lease unless release is false (release: false simulates a crash in tests).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopSignal.abort();
    await this.loop;
    const wasLeading = this.leading;
    await this.stepDown('stopped');
    if (wasLeading && options.release !== false) await this.release();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = this.clock.now();
      let ok = false;
      try {
        ok = await this.withTimeout(this.tryAcquireOrRenew(started));
      } catch (err) {
        this.log.warn(
          { err: errorMessage(err), leading: this.leading },
          this.leading ? 'lease renewal failed' : 'lease acquisition failed',
        );
      }
      if (!this.running) return;
      if (ok) {
        this.lastRenew = started;
        this.armDeadline();
        if (!this.leading) this.startLeading();
      }
      await sleep(this.clock, this.nextDelay(), this.stopSignal.signal);
    }
  }

  /** true when we hold the Lease after this attempt. */
  private async tryAcquireOrRenew(now: number): Promise<boolean> {
    const { api, namespace, name, identity } = this.options;
    let current: V1Lease | undefined = this.leading ? this.observed?.lease : undefined;
    if (!current) {
      try {
        current = await api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        try {
          const created = await api.createNamespacedLease({ namespace, body: this.record(undefined, now) });
          this.observe(created);
          return true;
        } catch (createErr) {
          if (isConflict(createErr)) return false; // another candidate created it first
          throw createErr;
        }
      }
      this.observe(current);
    }
    const holder = current.spec?.holderIdentity || undefined;
    if (holder !== identity && !this.expired()) {
      if (this.leading) await this.stepDown(`lease held by ${holder}`);
      return false;
    }
    try {
      const updated = await api.replaceNamespacedLease({ name, namespace, body: this.record(current, now) });
      this.observe(updated);
      return true;
    } catch (err) {
      if (isConflict(err)) {
        // Someone wrote the Lease since we read it: read again next time, and let the deadline
        // (or the read showing another holder) decide whether we still lead.
        this.observed = undefined;
        return false;
      }
      throw err;
    }
  }

  private record(current: V1Lease | undefined, now: number): V1Lease {
    const { namespace, name, identity } = this.options;
    const spec = current?.spec ?? {};
    const takingOver = (spec.holderIdentity || undefined) !== identity;
    const renewTime = new V1MicroTime(now);
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...(current?.metadata ?? {}), name, namespace },
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.leaseDurationMs / 1000,
        renewTime,
        acquireTime: takingOver ? renewTime : spec.acquireTime ? new V1MicroTime(toMillis(spec.acquireTime) ?? now) : renewTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && current ? 1 : 0),
      },
    };
  }

  private observe(lease: V1Lease): void {
    const rv = lease.metadata?.resourceVersion;
    if (!this.observed || this.observed.lease.metadata?.resourceVersion !== rv) {
      this.observed = { lease, at: this.clock.now() };
    } else {
      this.observed = { lease, at: this.observed.at };
    }
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== this.lastHolder) {
      this.lastHolder = holder;
      this.log.info({ holder }, 'lease holder changed');
      this.options.onNewLeader?.(holder);
    }
  }

  /** Whether the observed record may be taken over. */
  private expired(): boolean {
    if (!this.observed) return false;
    const spec = this.observed.lease.spec;
    if (!spec?.holderIdentity) return true;
    const durationMs = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    const now = this.clock.now();
    if (this.observed.at + durationMs <= now) return true;
    const renewed = toMillis(spec.renewTime);
    return renewed !== undefined && renewed + 2 * durationMs <= now;
  }

  private nextDelay(): number {
    const jittered = this.retryPeriodMs * (1 + 0.2 * this.random());
    if (this.leading || !this.observed) return this.leading ? this.retryPeriodMs : jittered;
    // A candidate wakes right when the observed lease expires, not up to a retry period later.
    const spec = this.observed.lease.spec;
    if (!spec?.holderIdentity) return Math.min(jittered, 100 + 200 * this.random());
    const expiresAt = this.observed.at + (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    const untilExpiry = expiresAt - this.clock.now();
    return Math.max(10, Math.min(jittered, untilExpiry + 10 + 50 * this.random()));
  }

  private startLeading(): void {
    this.leading = true;
    this.leaderGauge.set({ lease: this.options.name }, 1);
    this.leadSignal = new AbortController();
    this.log.info('became leader');
    try {
      this.options.onStartedLeading(this.leadSignal.signal);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'onStartedLeading threw');
    }
  }

  private async stepDown(reason: string): Promise<void> {
    if (this.deadlineTimer !== undefined) this.clock.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    if (!this.leading) return;
    this.leading = false;
    this.leaderGauge.set({ lease: this.options.name }, 0);
    this.leadSignal?.abort();
    this.log.warn({ reason }, 'stopped leading');
    try {
      await this.options.onStoppedLeading?.();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'onStoppedLeading threw');
    }
  }

  private armDeadline(): void {
    if (this.deadlineTimer !== undefined) this.clock.clearTimeout(this.deadlineTimer);
    const due = this.lastRenew + this.renewDeadlineMs - this.clock.now();
    this.deadlineTimer = this.clock.setTimeout(() => {
      this.deadlineTimer = undefined;
      this.observed = undefined;
      void this.stepDown(`not renewed for ${this.renewDeadlineMs} ms`);
    }, due);
  }

  private async release(): Promise<void> {
    const lease = this.observed?.lease;
    if (!lease || lease.spec?.holderIdentity !== this.options.identity) return;
    const { api, namespace, name } = this.options;
    try {
      const released = await this.withTimeout(
        api.replaceNamespacedLease({
          name,
          namespace,
          body: {
            ...lease,
            spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.clock.now()) },
          },
        }),
      );
      this.observe(released);
      this.log.info('lease released');
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'lease release failed: a standby takes over when it expires');
    }
  }

  private async withTimeout<T>(promise: Promise<T>): Promise<T> {
    let handle: TimerHandle | undefined;
    const timeout = new Promise<never>((_, reject) => {
      handle = this.clock.setTimeout(
        () => reject(new Error(`lease request timed out after ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
    });
    promise.catch(() => undefined);
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      if (handle !== undefined) this.clock.clearTimeout(handle);
    }
  }
}
