// The worker's handlers when the pod has a handler container (SPO_HANDLER_PORT is set): every
// run is a call over the contract (client.ts). Readiness follows GET /contract/v1/ready, polled
// with a bounded backoff while it is not 200 and every few seconds once it is; a refused
// connection marks the handler down at once. One worker sends one request at a time per session.
import { randomUUID } from 'node:crypto';
import type { Counter } from 'prom-client';
import type { Logger } from '../../observability/logger.ts';
import type { JsonValue } from '../../store/types.ts';
import { backoffDelay } from '../../kube/clock.ts';
import { WorkerError } from '../errors.ts';
import type { HandlerExecutor, HandlerMeta, HandlerOutcome, JsonObject } from '../handlers.ts';
import type { HandlerClient } from './client.ts';
import { HandlerCallError, failure, type HandlerInfo, type Readiness } from './protocol.ts';

export interface ReadinessPolling {
  /** First retry after a failed probe; doubles up to maxMs. */
  baseMs: number;
  maxMs: number;
  /** Probe interval while ready (finds a handler that died between requests). */
  readyEveryMs: number;
}

export const DEFAULT_POLLING: ReadinessPolling = { baseMs: 100, maxMs: 2_000, readyEveryMs: 2_000 };

export interface ExternalHandlersOptions {
  client: HandlerClient;
  failures: Counter<'reason'>;
  logger: Logger;
  polling?: Partial<ReadinessPolling>;
}

const isObject = (v: JsonValue): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);

export class ExternalHandlers implements HandlerExecutor {
  /** A handler may call a language model: never run it twice for one request. */
  readonly rerunOnConflict = false;
  private readonly client: HandlerClient;
  private readonly failures: Counter<'reason'>;
  private readonly logger: Logger;
  private readonly polling: ReadinessPolling;
  private state: Readiness = { ready: false, reason: 'handler not probed yet', handlers: [] };
  private probing: Promise<Readiness> | undefined;
  private failedProbes = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly sessions = new Map<string, Promise<unknown>>();

  constructor(options: ExternalHandlersOptions) {
    this.client = options.client;
    this.failures = options.failures;
    this.logger = options.logger;
    this.polling = { ...DEFAULT_POLLING, ...options.polling };
  }

  /** Starts polling the handler's readiness. */
  start(): void {
    this.stopped = false;
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.client.close();
  }

  readiness(): Readiness {
    return this.state;
  }

  /** One probe at a time; the state follows its answer. */
  probe(): Promise<Readiness> {
    this.probing ??= this.client
      .ready()
      .then((next) => {
        if (next.ready !== this.state.ready)
          this.logger.info({ ready: next.ready, reason: next.reason, handlers: next.handlers.length }, 'handler readiness changed');
        this.state = next;
        return next;
      })
      .finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    const r = await this.probe();
    this.failedProbes = r.ready ? 0 : this.failedProbes + 1;
    if (this.stopped) return;
    const delay = r.ready
      ? this.polling.readyEveryMs
      : backoffDelay(this.failedProbes, { baseMs: this.polling.baseMs, maxMs: this.polling.maxMs, jitter: 0.2 });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), delay);
    this.timer.unref();
  }

  /** The handler went away: not ready now, and probe again soon rather than at the ready interval. */
  private markDown(reason: string): void {
    if (this.state.ready) this.logger.warn({ reason }, 'handler unreachable; not ready until it answers again');
    this.state = { ready: false, reason, handlers: this.state.handlers };
    if (!this.stopped) {
      this.failedProbes = 0;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.poll(), this.polling.baseMs);
      this.timer.unref();
    }
  }

  /** The handler decides what names and args it accepts; the body's schema checked the name's shape. */
  validate(): void {}

  async describe(): Promise<HandlerInfo[]> {
    const state = this.state.ready ? this.state : await this.probe();
    if (!state.ready) throw failure('unavailable', `the handler is not ready (${state.reason}); retry shortly`);
    return state.handlers;
  }

  /** A handler name as a metric label: only names the handler lists, so clients cannot mint series. */
  metricLabel(name: string): string {
    return this.state.handlers.some((h) => h.name === name) ? name : 'unlisted';
  }

  /** Runs work for one session after the earlier work for it finished (per worker). */
  async exclusive<T>(sessionId: string, work: () => Promise<T>): Promise<T> {
    const before = this.sessions.get(sessionId);
    const mine = (before ?? Promise.resolve()).then(work, work);
    const tail = mine.catch(() => undefined);
    this.sessions.set(sessionId, tail);
    try {
      return await mine;
    } finally {
      if (this.sessions.get(sessionId) === tail) this.sessions.delete(sessionId);
    }
  }

  async run(name: string, args: JsonValue, data: JsonValue, meta: HandlerMeta): Promise<HandlerOutcome> {
    if (!isObject(data)) throw new WorkerError('INVALID_SESSION_DATA', 'session data is not a JSON object; handlers need an object');
    if (!this.state.ready) {
      const now = await this.probe();
      if (!now.ready) throw this.count(failure('unavailable', `the handler is not ready (${now.reason}); retry shortly`));
    }
    try {
      const answer = await this.client.invoke({
        requestId: randomUUID(),
        handler: name,
        args,
        session: { id: meta.sessionId, version: meta.version, anonymous: meta.anonymous, data },
      });
      if (answer.data === undefined) return { result: answer.result, data, changed: false };
      return { result: answer.result, data: answer.data, changed: JSON.stringify(answer.data) !== JSON.stringify(data) };
    } catch (error) {
      if (!(error instanceof HandlerCallError)) throw error;
      if (error.reason === 'unavailable') this.markDown(error.message);
      throw this.count(error);
    }
  }

  private count(error: HandlerCallError): HandlerCallError {
    this.failures.inc({ reason: error.reason });
    if (error.reason !== 'handler_error' && error.reason !== 'invalid_args' && error.reason !== 'unknown_handler')
      this.logger.warn({ reason: error.reason, code: error.code, message: error.message }, 'handler call failed');
    return error;
  }
}
