// The worker process: its HTTP server, its registration in the store with a heartbeat, its
// activations (activation/: the leases of the sessions it runs, renewed while live, released idle), evacuation (the store says draining) and shutdown (SIGTERM).
// Draining = refuse new session work (503 WORKER_DRAINING), let in-flight requests finish by
// the deadline, write local sessions to the store, release leases; on shutdown, unregister.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../observability/logger.ts';
import type { SessionStore } from '../store/types.ts';
import { Forwarder, WorkerDirectory } from './activation/forward.ts';
import { handover } from './activation/handover.ts';
import { MemoryRouter } from './activation/memory-router.ts';
import { ActivationRegistry } from './activation/registry.ts';
import { ActivationRouter } from './activation/router.ts';
import { SessionModes, type SessionMode } from './backends.ts';
import type { WorkerConfig } from './config.ts';
import { errorCode } from './errors.ts';
import { HandlerClient } from './contract/client.ts';
import { ExternalHandlers } from './contract/external.ts';
import { HandlerRelease } from './handler-release.ts';
import { builtinHandlers, type HandlerExecutor } from './handlers.ts';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.ts';
import { RequestRecords } from './request-records.ts';
import { InFlight, createHttpServer } from './server.ts';

/** How long a keyed create's claim holds, and what an anonymous execute's adds to the handler timeout:
 *  a claim whose worker died frees its key after it (docs/activation.md). */
const CLAIM_MARGIN_MS = 30_000;

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

export class Worker {
  readonly config: WorkerConfig;
  readonly store: SessionStore;
  readonly modes: SessionModes;
  readonly handlers: HandlerExecutor;
  /** The handler container's client, when the pod has one. */
  readonly external: ExternalHandlers | undefined;
  readonly metrics: WorkerMetrics;
  /** The sessions this worker runs (Centralized, Dual): their leases, queues and idle release. */
  readonly activations: ActivationRegistry;
  readonly directory: WorkerDirectory;
  private readonly forwarder: Forwarder;
  private readonly router: ActivationRouter;
  /** WorkerLocal: requests go to the worker whose memory holds the session. */
  private readonly memory: MemoryRouter;
  private activationTimer: NodeJS.Timeout | undefined;
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
  /** The heartbeat in flight. */
  private beating: Promise<void> | undefined;
  /** When the handler container may stop (its preStop hook waits on it). */
  private readonly handlerRelease = new HandlerRelease();

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
    this.directory = new WorkerDirectory(deps.store, deps.config.pool);
    this.forwarder = new Forwarder(deps.config.workerName, deps.config.handlerTimeoutMs + 10_000);
    this.activations = new ActivationRegistry({
      store: deps.store,
      pool: deps.config.pool,
      worker: deps.config.workerName,
      leaseMs: deps.leaseMs ?? 30_000,
      idleMs: deps.config.idleSeconds * 1000,
      directory: this.directory,
      logger: this.logger,
    });
    this.modes = new SessionModes(
      {
        pool: deps.config.pool,
        worker: deps.config.workerName,
        store: deps.store,
        sessionTtlSeconds: deps.config.sessionTtlSeconds,
        anonTtlSeconds: deps.config.anonTtlSeconds,
        maxSessionBytes: deps.config.maxSessionBytes,
        leases: this.activations,
      },
      deps.config.sessionMode,
    );
    this.memory = new MemoryRouter({
      store: deps.store,
      pool: deps.config.pool,
      worker: deps.config.workerName,
      modes: this.modes,
      directory: this.directory,
      forwarder: this.forwarder,
      logger: this.logger,
      holds: (id) => this.holds(id),
      leaseMs: deps.leaseMs ?? 30_000,
    });
    this.router = new ActivationRouter({
      store: deps.store,
      pool: deps.config.pool,
      worker: deps.config.workerName,
      registry: this.activations,
      directory: this.directory,
      forwarder: this.forwarder,
      logger: this.logger,
      memory: this.memory,
    });
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

  /** The peers' probe: this worker's memory while it is where sessions live (WorkerLocal, or a step to or
   *  from it), else its activations. */
  holds(id: string): boolean {
    return this.modes.memoryHolds ? this.modes.local.has(id) : this.activations.get(id) !== undefined;
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
      router: this.router,
      memory: this.memory,
      holds: (id) => this.holds(id),
      handlerReleased: () => this.handlerRelease.released(),
      storeUnreachable: () => !this.storeReachable,
      requests: new RequestRecords({
        store: this.store,
        pool: this.config.pool,
        worker: this.config.workerName,
        logger: this.logger,
        // A create is one store call; an anonymous execute runs a handler, for up to its timeout.
        pendingMs: (scope) => (scope === 'create' ? CLAIM_MARGIN_MS : this.config.handlerTimeoutMs + CLAIM_MARGIN_MS),
      }),
      handover: (body) =>
        handover(
          { store: this.store, pool: this.config.pool, worker: this.config.workerName, registry: this.activations, logger: this.logger },
          body,
        ),
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
    // Leases are renewed only for live activations, and idle ones released: no activation, no command.
    this.activationTimer = setInterval(() => void this.tickActivations(), 1_000);
    this.activationTimer.unref();
    this.heartbeatTimer.unref();
    this.sweepTimer.unref();
    this.logger.info({ address: this.address, endpoint: this.config.advertiseEndpoint, mode: this.modes.mode }, 'worker listening');
  }

  private async tickActivations(): Promise<void> {
    if (this.stopping) return;
    await this.activations.renewDue().catch(() => undefined);
    const released = await this.activations.deactivateIdle().catch(() => 0);
    if (released > 0) this.logger.debug({ released }, 'idle activations released');
    this.metrics.activations.set(this.activations.size);
  }

  /** Refreshes the registration and reads back whether the operator asked this worker to drain. A stop
   *  waits for the one in flight, so that its registration does not come back after the stop removed it. */
  heartbeat(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.beating ??= this.beat().finally(() => (this.beating = undefined));
    return this.beating;
  }

  private async beat(): Promise<void> {
    const startedAt = Date.now();
    try {
      const workers = await this.store.listWorkers(this.config.pool);
      this.directory.update(workers);
      const mine = workers.find((w) => w.worker === this.config.workerName);
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
      // Peers see the registration for three heartbeats; warm records are trusted for one.
      this.activations.confirmLive(this.draining ? 0 : startedAt + this.config.heartbeatSeconds * 1000);
      this.storeReachable = true;
      this.lastHeartbeatError = undefined;
      this.metrics.heartbeats.inc({ result: 'ok' });
    } catch (error) {
      this.activations.confirmLive(0);
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
   * (Centralized, Dual; in WorkerLocal the drain's copies stay owned by this worker until another
   * worker takes them into its memory).
   */
  drain(reason: string): Promise<void> {
    if (this.drainDone) return this.drainDone;
    this.drainReason = reason;
    this.activations.confirmLive(0); // peers may take a draining worker's sessions: nothing runs warm

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
      // Centralized and Dual: the store holds every session now, so its leases go at once and the next
      // request activates it on another worker without waiting for this one to exit.
      const released = this.modes.mode !== 'WorkerLocal' ? await this.activations.releaseAll(deadline) : 0;
      this.logger.info({ flushed, released, mode: this.modes.mode }, 'drained');
    } catch (error) {
      this.logger.error({ code: errorCode(error), err: error }, 'drain could not write local sessions to the store');
    }
  }

  /**
   * Drains (SIGTERM), unregisters, closes the server and the store. `lingerMs` (the process's
   * SIGTERM path: SPO_SHUTDOWN_LINGER_SECONDS) keeps the listener open at least that long after the
   * call, the drain included, so connections a Service still sends to a deleted pod get a retryable
   * 503 instead of a dead address.
   */
  stop(reason = 'shutdown', { lingerMs = 0 }: { lingerMs?: number } = {}): Promise<void> {
    const lingerUntil = Date.now() + lingerMs;
    this.stopping ??= (async () => {
      const drained = this.drain(reason);
      this.handlerRelease.stopping(drained);
      await drained;
      clearInterval(this.heartbeatTimer);
      clearInterval(this.sweepTimer);
      clearInterval(this.activationTimer);
      await this.beating;
      await this.store.unregisterWorker(this.config.pool, this.config.workerName).catch(() => undefined);
      const server = this.server;
      const lingerLeft = lingerUntil - Date.now();
      if (server && lingerLeft > 0) {
        this.logger.info({ lingerMs: lingerLeft }, 'drained: listener kept open while endpoints catch up');
        await new Promise((resolve) => setTimeout(resolve, lingerLeft));
      }
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
      this.forwarder.close();
      await this.store.close().catch(() => undefined);
      this.logger.info('stopped');
    })();
    return this.stopping;
  }
}
