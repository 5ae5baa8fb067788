// A small client of the worker API. It knows the list of worker endpoints, picks one per
// request (at random, or by session id where sessions live in a worker's memory), and
// retries the answers that mean "nothing was applied, try again elsewhere or later"
// (FENCED, SESSION_MOVING, WORKER_DRAINING, CONFLICT, STORE_UNAVAILABLE, connection refused)
// with exponential backoff and full jitter, bounded in attempts and time. Every non-GET call carries an
// Idempotency-Key (a new one per call, the same on its retries). A request whose connection broke after
// it was sent has an unknown outcome: it is resent only when that is safe, a GET or a session execute,
// whose key makes the worker answer a retry from the recorded outcome (docs/activation.md).
import { randomUUID } from 'node:crypto';
import { backoffDelay } from '../kube/clock.ts';
import type { JsonValue } from '../store/types.ts';
import type { SessionView } from './backends.ts';
import { RETRY_ELSEWHERE_CODES } from './errors.ts';

export type Routing = 'random' | 'session';

export interface WorkerClientOptions {
  /** "host:port" or "http://host:port" of each worker. */
  endpoints: string[];
  /** 'random' (Centralized) or 'session': a session's requests go to the worker that holds it. */
  routing?: Routing;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Total time budget of one call including retries. */
  budgetMs?: number;
  /** Per-attempt timeout. */
  timeoutMs?: number;
  random?: () => number;
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** The call's Idempotency-Key (default: a new random one per call, reused by its retries). */
  idempotencyKey?: string;
  /** Resend after an unknown outcome (the worker answers a keyed retry from its record). */
  resendUnknown?: boolean;
}

export class WorkerApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly endpoint: string;
  readonly attempts: number;
  constructor(status: number, code: string, message: string, endpoint: string, attempts: number) {
    super(`${code}: ${message} (${endpoint}, ${attempts} attempt${attempts === 1 ? '' : 's'})`);
    this.name = 'WorkerApiError';
    this.status = status;
    this.code = code;
    this.endpoint = endpoint;
    this.attempts = attempts;
  }
}

const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

function connectionCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$|^UND_ERR/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export class WorkerClient {
  private endpoints: string[];
  private routing: Routing;
  private readonly o: Required<Omit<WorkerClientOptions, 'endpoints' | 'routing' | 'fetch'>> & { fetch: typeof fetch };
  /** Where each session was created or last found (session routing). */
  private readonly home = new Map<string, string>();

  constructor(options: WorkerClientOptions) {
    if (options.endpoints.length === 0) throw new Error('WorkerClient needs at least one endpoint');
    this.endpoints = options.endpoints.map((e) => (e.startsWith('http') ? e : `http://${e}`).replace(/\/$/, ''));
    this.routing = options.routing ?? 'random';
    this.o = {
      maxAttempts: options.maxAttempts ?? 8,
      baseDelayMs: options.baseDelayMs ?? 20,
      maxDelayMs: options.maxDelayMs ?? 1_000,
      budgetMs: options.budgetMs ?? 30_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      random: options.random ?? Math.random,
      fetch: options.fetch ?? fetch,
    };
  }

  setRouting(routing: Routing): void {
    this.routing = routing;
  }

  setEndpoints(endpoints: string[]): void {
    this.endpoints = endpoints.map((e) => (e.startsWith('http') ? e : `http://${e}`).replace(/\/$/, ''));
  }

  /** The worker a session's requests go to under session routing. */
  homeOf(sessionId: string): string {
    const known = this.home.get(sessionId);
    if (known && this.endpoints.includes(known)) return known;
    return this.endpoints[hash(sessionId) % this.endpoints.length] as string;
  }

  private pick(sessionId: string | undefined, avoid: Set<string>): string {
    if (this.routing === 'session' && sessionId !== undefined) {
      const home = this.homeOf(sessionId);
      if (!avoid.has(home)) return home;
    }
    const candidates = this.endpoints.filter((e) => !avoid.has(e));
    const from = candidates.length > 0 ? candidates : this.endpoints;
    return from[Math.floor(this.o.random() * from.length)] as string;
  }

  async request<T>(method: string, path: string, body: unknown, sessionId?: string, options: CallOptions = {}): Promise<T> {
    return (await this.send<T>(method, path, body, sessionId, options)).body;
  }

  /** One call with retries; returns the answer and the endpoint that gave it. */
  async send<T>(
    method: string,
    path: string,
    body: unknown,
    sessionId?: string,
    options: CallOptions = {},
  ): Promise<{ body: T; endpoint: string }> {
    const started = Date.now();
    const idempotencyKey = method === 'GET' ? undefined : (options.idempotencyKey ?? randomUUID());
    const headers: Record<string, string> = {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
    };
    const avoid = new Set<string>();
    let last: WorkerApiError | undefined;
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      const endpoint = this.pick(sessionId, avoid);
      let response: Response;
      try {
        response = await this.o.fetch(`${endpoint}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
      } catch (error) {
        const code = connectionCode(error) ?? 'CONNECTION_FAILED';
        last = new WorkerApiError(0, code, error instanceof Error ? error.message : String(error), endpoint, attempt);
        // Refused: the request never reached a worker. Otherwise only a GET or a recorded (keyed) execute may be resent.
        if (!NOT_SENT.has(code) && method !== 'GET' && !options.resendUnknown) throw last;
        avoid.add(endpoint);
        if (this.routing === 'session' && sessionId !== undefined) this.home.delete(sessionId);
        if (!(await this.pause(attempt, started))) break;
        continue;
      }
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      if (response.ok) {
        if (sessionId !== undefined && this.routing === 'session') this.home.set(sessionId, endpoint);
        return { body: parsed as T, endpoint };
      }
      const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      last = new WorkerApiError(
        response.status,
        err?.code ?? `HTTP_${response.status}`,
        err?.message ?? text.slice(0, 200),
        endpoint,
        attempt,
      );
      if (last.code === 'SESSION_NOT_ON_WORKER' && sessionId !== undefined) {
        // Session routing whose home is unknown or stale: look on the other workers.
        avoid.add(endpoint);
        this.home.delete(sessionId);
        const untried = this.endpoints.filter((e) => !avoid.has(e));
        if (untried.length === 0) throw last;
        this.home.set(sessionId, untried[Math.floor(this.o.random() * untried.length)] as string);
        continue;
      }
      if (!RETRY_ELSEWHERE_CODES.has(last.code)) throw last;
      if (last.code !== 'CONFLICT') avoid.add(endpoint);
      if (avoid.size >= this.endpoints.length) avoid.clear();
      const retryAfter = Number(response.headers.get('retry-after') ?? NaN);
      if (!(await this.pause(attempt, started, Number.isFinite(retryAfter) ? Math.min(retryAfter * 1000, this.o.maxDelayMs) : undefined)))
        break;
    }
    throw last ?? new WorkerApiError(0, 'NO_ATTEMPT', 'no attempt was made', '', 0);
  }

  private async pause(attempt: number, started: number, hintMs?: number): Promise<boolean> {
    if (attempt >= this.o.maxAttempts) return false;
    const delay = Math.max(
      backoffDelay(attempt, { baseMs: this.o.baseDelayMs, maxMs: this.o.maxDelayMs, jitter: 'full' }, this.o.random),
      hintMs !== undefined ? hintMs * this.o.random() : 0,
    );
    if (Date.now() + delay - started > this.o.budgetMs) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    return true;
  }

  async createSession(data: Record<string, JsonValue> = {}, ttlSeconds?: number): Promise<SessionView> {
    const { body, endpoint } = await this.send<{ session: SessionView }>('POST', '/v1/sessions', {
      data,
      ...(ttlSeconds ? { ttlSeconds } : {}),
    });
    this.home.set(body.session.id, endpoint);
    return body.session;
  }

  async getSession(id: string): Promise<SessionView> {
    const { session } = await this.request<{ session: SessionView }>('GET', `/v1/sessions/${encodeURIComponent(id)}`, undefined, id);
    return session;
  }

  async deleteSession(id: string): Promise<void> {
    await this.request('DELETE', `/v1/sessions/${encodeURIComponent(id)}`, undefined, id);
    this.home.delete(id);
  }

  /** Runs a handler on a session, once: retries (also after an unknown outcome) carry the same Idempotency-Key. */
  async execute<T = JsonValue>(
    id: string,
    handler: string,
    args?: JsonValue,
    options: { idempotencyKey?: string } = {},
  ): Promise<{ sessionId: string; version: number; result: T }> {
    return this.request(
      'POST',
      `/v1/sessions/${encodeURIComponent(id)}/execute`,
      { handler, ...(args === undefined ? {} : { args }) },
      id,
      { ...options, resendUnknown: true },
    );
  }

  async executeAnonymous<T = JsonValue>(handler: string, args?: JsonValue, data?: Record<string, JsonValue>): Promise<T> {
    const { result } = await this.request<{ result: T }>('POST', '/v1/execute', {
      handler,
      ...(args === undefined ? {} : { args }),
      ...(data ? { data } : {}),
    });
    return result;
  }
}
