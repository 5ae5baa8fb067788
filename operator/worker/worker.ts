// The worker process: its HTTP server, its registration in the store with a heartbeat, the
// leases of the sessions it owns, evacuation (the store says draining) and shutdown (SIGTERM).
// Draining = refuse new session work (503 WORKER_DRAINING), let in-flight requests finish by
// the deadline, write local sessions to the store, release leases; on shutdown, unregister.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../observability/logger.ts';
import type { Lease, SessionRecord, SessionStore } from '../store/types.ts';
import { SessionModes, type LeaseTracker, type SessionMode } from './backends.ts';
import type { WorkerConfig } from './config.ts';
import { errorCode } from './errors.ts';
import { HandlerClient } from './contract/client.ts';
import { ExternalHandlers } from './contract/external.ts';
import { builtinHandlers, type HandlerExecutor } from './handlers.ts';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.ts';
import { InFlight, createHttpServer } from './server.ts';

export interface WorkerDeps {
  config: WorkerConfig;
  store: SessionStore;
  /** Prometheus registry served on /metrics (the store's metrics belong on it too). */
  registry: Registry;
  /** Defaults to the handler container when config.handlerPort is set, else the built-in handlers. */
  handlers?: HandlerExecutor;
  logger?: Logger;
  /** Lease length for the sessions this worker owns; renewed at a third of it. */
  leaseMs?: number;
}

const LEASE_GONE = new Set(['LEASE_LOST', 'SESSION_NOT_FOUND', 'FENCED', 'SESSION_MOVING']);

/** The leases of the sessions this worker owns: renewed in the background, released on drain. */
export class LeaseKeeper implements LeaseTracker {
  readonly leases = new Map<string, Lease>();
  private readonly store: SessionStore;
  private readonly worker: string;
  private readonly leaseMs: number;
  private readonly logger: Logger;

  constructor(store: SessionStore, worker: string, leaseMs: number, logger: Logger) {
    this.store = store;
    this.worker = worker;
    this.leaseMs = leaseMs;
    this.logger = logger;
  }

  held(record: SessionRecord): void {
    if (record.owner !== this.worker || record.anonymous) return;
    this.leases.set(record.id, {
      sessionId: record.id,
      pool: record.pool,
      owner: this.worker,
      epoch: record.epoch,
      expiresAt: Date.now() + this.leaseMs,
    });
  }

  dropped(id: string): void {
    this.leases.delete(id);
  }

  private async forEach(work: (lease: Lease) => Promise<void>, filter: (lease: Lease) => boolean = () => true): Promise<void> {
    const due = [...this.leases.values()].filter(filter);
    for (let i = 0; i < due.length; i += 100) await Promise.all(due.slice(i, i + 100).map(work));
  }

  /** Renews the leases that lapse within two thirds of their length. */
  async renewDue(): Promise<void> {
    const horizon = Date.now() + (this.leaseMs * 2) / 3;
    await this.forEach(
      async (lease) => {
        try {
          this.leases.set(lease.sessionId, await this.store.renew(lease, this.leaseMs));
        } catch (error) {
          if (LEASE_GONE.has(errorCode(error) ?? '')) this.leases.delete(lease.sessionId);
          else this.logger.debug({ sessionId: lease.sessionId, code: errorCode(error) }, 'lease renewal failed; will retry');
        }
      },
      (lease) => lease.expiresAt <= horizon,
    );
  }

  async releaseAll(): Promise<number> {
    let released = 0;
    await this.forEach(async (lease) => {
      try {
        await this.store.release(lease);
        released++;
      } catch (error) {
        this.logger.debug({ sessionId: lease.sessionId, code: errorCode(error) }, 'lease release failed');
      }
      this.leases.delete(lease.sessionId);
    });
    return released;
  }
}

export class Worker {
  readonly config: WorkerConfig;
  readonly store: SessionStore;
  readonly modes: SessionModes;
  readonly handlers: HandlerExecutor;
  /** The handler container's client, when the pod has one. */
  readonly external: ExternalHandlers | undefined;
  readonly metrics: WorkerMetrics;
  readonly leases: LeaseKeeper;
  readonly tracker = new InFlight();
  private readonly logger: Logger;
  private readonly registry: Registry;
  private server: http.Server | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private drainReason: string | undefined;
  private drainDone: Promise<void> | undefined;
  private storeReachable = true;
  private lastHeartbeatError: string | undefined;
  private stopping: Promise<void> | undefined;

  constructor(deps: WorkerDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.registry = deps.registry;
    this.logger = deps.logger ?? createLogger('worker', { pool: deps.config.pool, worker: deps.config.workerName });
    this.metrics = createWorkerMetrics(deps.registry);
    if (!deps.handlers && deps.config.handlerPort !== undefined) {
      const client = new HandlerClient({
        port: deps.config.handlerPort,
        timeoutMs: deps.config.handlerTimeoutMs,
        maxSessionBytes: deps.config.maxSessionBytes,
      });
      this.external = new ExternalHandlers({ client, failures: this.metrics.handlerFailures, logger: this.logger });
    }
    this.handlers = deps.handlers ?? this.external ?? builtinHandlers();
    this.leases = new LeaseKeeper(deps.store, deps.config.workerName, deps.leaseMs ?? 30_000, this.logger);
    this.modes = new SessionModes(
      {
        pool: deps.config.pool,
        worker: deps.config.workerName,
        store: deps.store,
        sessionTtlSeconds: deps.config.sessionTtlSeconds,
        anonTtlSeconds: deps.config.anonTtlSeconds,
        maxSessionBytes: deps.config.maxSessionBytes,
        leases: this.leases,
      },
      deps.config.sessionMode,
    );
    this.setModeGauge(this.modes.mode);
  }

  get draining(): boolean {
    return this.drainReason !== undefined;
  }

  get address(): AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  readiness(): { ready: boolean; reason: string } {
    if (this.drainReason) return { ready: false, reason: `draining: ${this.drainReason}` };
    const handler = this.external?.readiness();
    if (handler && !handler.ready) return { ready: false, reason: handler.reason };
    const degraded = !this.storeReachable || this.store.stats().degraded;
    if (degraded && !this.config.allowDegraded)
      return { ready: false, reason: `session store unreachable${this.lastHeartbeatError ? `: ${this.lastHeartbeatError}` : ''}` };
    if (degraded) return { ready: true, reason: 'degraded: session store unreachable, serving from the local cache and journal' };
    return { ready: true, reason: 'ok' };
  }

  private setModeGauge(mode: SessionMode): void {
    for (const m of ['WorkerLocal', 'Dual', 'Centralized'] as const) this.metrics.mode.set({ mode: m }, m === mode ? 1 : 0);
  }

  async start(): Promise<void> {
    this.external?.start();
    const pulled = await this.modes.start();
    if (pulled > 0) this.logger.info({ pulled, mode: this.modes.mode }, 'loaded owned sessions from the store into memory');
    this.server = createHttpServer({
      pool: this.config.pool,
      worker: this.config.workerName,
      maxBodyBytes: this.config.maxBodyBytes,
      adminToken: this.config.adminToken,
      modes: this.modes,
      handlers: this.handlers,
      metrics: this.metrics,
      registry: this.registry,
      logger: this.logger,
      tracker: this.tracker,
      drainingReason: () => this.drainReason,
      readiness: () => this.readiness(),
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await this.heartbeat();
    const every = this.config.heartbeatSeconds * 1000;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), every);
    this.sweepTimer = setInterval(() => {
      this.modes.local.sweep();
      this.metrics.localSessions.set(this.modes.local.size);
      this.setModeGauge(this.modes.mode);
    }, 5_000);
    this.heartbeatTimer.unref();
    this.sweepTimer.unref();
    this.logger.info({ address: this.address, endpoint: this.config.advertiseEndpoint, mode: this.modes.mode }, 'worker listening');
  }

  /** Refreshes the registration and reads back whether the operator asked this worker to drain. */
  async heartbeat(): Promise<void> {
    if (this.stopping) return;
    try {
      const mine = (await this.store.listWorkers(this.config.pool)).find((w) => w.worker === this.config.workerName);
      const told = mine?.draining === true;
      if (told && !this.draining) void this.drain('evacuation requested through the store');
      if (!told && this.drainReason === 'evacuation requested through the store' && this.drainDone) {
        await this.drainDone;
        this.drainReason = undefined;
        this.drainDone = undefined;
        this.metrics.draining.set(0);
        this.logger.info('evacuation cancelled: taking work again');
      }
      await this.store.registerWorker(
        { pool: this.config.pool, worker: this.config.workerName, endpoint: this.config.advertiseEndpoint, draining: this.draining },
        this.config.heartbeatSeconds * 3000,
      );
      await this.leases.renewDue();
      this.storeReachable = true;
      this.lastHeartbeatError = undefined;
      this.metrics.heartbeats.inc({ result: 'ok' });
    } catch (error) {
      this.storeReachable = false;
      // /readyz shows the code only: an error's text can name Redis nodes; the log has it.
      this.lastHeartbeatError = errorCode(error) ?? 'error';
      this.metrics.heartbeats.inc({ result: 'error' });
      this.logger.warn(
        { code: this.lastHeartbeatError, reason: error instanceof Error ? error.message : String(error) },
        'heartbeat failed',
      );
    }
  }

  /**
   * Stops taking new session work, waits for in-flight requests until the deadline, writes
   * local sessions to the store (WorkerLocal, Dual), releases the leases this worker holds
   * (Centralized; in the other modes the owner stays so the sessions can be found).
   */
  drain(reason: string): Promise<void> {
    if (this.drainDone) return this.drainDone;
    this.drainReason = reason;
    this.metrics.draining.set(1);
    this.drainDone = this.doDrain(reason);
    return this.drainDone;
  }

  private async doDrain(reason: string): Promise<void> {
    const deadline = Date.now() + this.config.drainDeadlineSeconds * 1000;
    this.logger.info({ reason, inFlight: this.tracker.size, deadlineSeconds: this.config.drainDeadlineSeconds }, 'draining');
    await this.store
      .registerWorker(
        { pool: this.config.pool, worker: this.config.workerName, endpoint: this.config.advertiseEndpoint, draining: true },
        this.config.heartbeatSeconds * 3000,
      )
      .catch(() => undefined);
    const idle = await this.tracker.idle(deadline);
    if (!idle) this.logger.warn({ inFlight: this.tracker.size }, 'drain deadline passed with requests in flight');
    try {
      const flushed = await this.modes.flushLocal();
      const released = this.modes.mode === 'Centralized' ? await this.leases.releaseAll() : 0;
      this.logger.info({ flushed, released, mode: this.modes.mode }, 'drained');
    } catch (error) {
      this.logger.error({ code: errorCode(error), err: error }, 'drain could not write local sessions to the store');
    }
  }

  /** Drains (SIGTERM), unregisters, closes the server and the store. */
  stop(reason = 'shutdown'): Promise<void> {
    this.stopping ??= (async () => {
      await this.drain(reason);
      clearInterval(this.heartbeatTimer);
      clearInterval(this.sweepTimer);
      await this.store.unregisterWorker(this.config.pool, this.config.workerName).catch(() => undefined);
      const server = this.server;
      if (server) {
        server.closeIdleConnections();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.closeAllConnections();
            resolve();
          }, 2_000);
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
        });
      }
      this.external?.stop();
      await this.store.close().catch(() => undefined);
      this.logger.info('stopped');
    })();
    return this.stopping;
  }
}
