// The worker's HTTP JSON API (node:http). Routes, body validation, error mapping, metrics.
// Session routes go through SessionModes (so a mode switch holds them briefly) and are
// refused with 503 WORKER_DRAINING while the worker drains.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import { checkAdminAuthorization } from './admin-auth.ts';
import type { JsonValue, RequestScope } from '../store/types.ts';
import type { MemoryRouter } from './activation/memory-router.ts';
import { REPLAYED_HEADER } from './activation/forward.ts';
import { sessionRequest, type ActivationRouter, type SessionRequest } from './activation/router.ts';
import { executeReplyBody, viewOf, type ExecuteOptions, type SessionModes, type SessionView } from './backends.ts';
import { WorkerError, toWorkerError } from './errors.ts';
import { guardMalformedRequests } from './http-guard.ts';
import { HANDLER_STOP_PATH } from './handler-release.ts';
import type { RequestRecords } from './request-records.ts';
import type { InFlight } from './in-flight.ts';
import type { HandlerExecutor, JsonObject } from './handlers.ts';
import type { WorkerMetrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import {
  checkTtl,
  decodePathSegment,
  parseJsonBody,
  readBody,
  validateAnonymous,
  validateCreate,
  validateExecute,
  validateMode,
  validateSessionId,
} from './validation.ts';

export { InFlight } from './in-flight.ts';

export interface ServerContext {
  pool: string;
  worker: string;
  maxBodyBytes: number;
  adminToken: string | undefined;
  modes: SessionModes;
  handlers: HandlerExecutor;
  metrics: WorkerMetrics;
  registry: Registry;
  logger: Logger;
  /** Non-empty while the worker refuses new work (draining), with the reason. */
  drainingReason(): string | undefined;
  readiness(): { ready: boolean; reason: string };
  /** Session-route requests being served; the drain waits for them. */
  tracker: InFlight;
  onSessionCreated?(view: SessionView): void;
  /** Single activation (Centralized and Dual): where a session's requests run. Absent: any worker runs any. */
  router?: ActivationRouter;
  /** WorkerLocal: a session's requests go to the worker whose memory holds it (activation/memory-router.ts). */
  memory?: MemoryRouter;
  /** Whether this worker holds the session (GET /v1/sessions/{id}/holder, the peers' probe). */
  holds?(id: string): boolean;
  /** POST /admin/handover (activation/handover.ts). */
  handover?(body: unknown): Promise<unknown>;
  /** Settles when the handler container may stop (GET /lifecycle/handler-stop, its preStop hook). */
  handlerReleased?(): Promise<void>;
  /** True while the worker's last heartbeat could not reach the store. */
  storeUnreachable?(): boolean;
  /** Idempotency-Keys of creates and anonymous executes (request-records.ts); absent: not recorded. */
  requests?: RequestRecords;
}

interface Route {
  name: string;
  method: string;
  pattern: RegExp;
  session: boolean;
  run(ctx: ServerContext, req: IncomingMessage, params: string[]): Promise<Reply>;
}

interface Reply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

async function jsonBody(ctx: ServerContext, req: IncomingMessage, emptyAs?: unknown): Promise<unknown> {
  return parseJsonBody(await readBody(req, ctx.maxBodyBytes), emptyAs);
}

function sessionParam(params: string[]): string {
  return validateSessionId(decodePathSegment(params[0] ?? ''));
}

function checkAdmin(ctx: ServerContext, req: IncomingMessage): void {
  checkAdminAuthorization(ctx.adminToken, req.headers.authorization);
}

/** A create or an anonymous execute: with an Idempotency-Key and the store (Centralized, Dual), run once
 *  per key through the pool's request records; otherwise run as it comes (docs/activation.md). */
async function keyed(
  ctx: ServerContext,
  req: IncomingMessage,
  scope: RequestScope,
  route: string,
  text: string,
  run: () => Promise<Reply>,
): Promise<Reply> {
  const key = sessionRequest(req, route, text).idempotencyKey;
  await ctx.modes.settled();
  if (key === undefined || !ctx.requests || ctx.modes.mode === 'WorkerLocal') return run();
  return ctx.requests.run(scope, { key, route, body: text }, run);
}

/** The router when single activation applies (Centralized, Dual), else undefined. */
function routerFor(ctx: ServerContext): ActivationRouter | undefined {
  return ctx.modes.mode === 'WorkerLocal' ? undefined : ctx.router;
}

/** The memory router in WorkerLocal, else undefined. */
function memoryFor(ctx: ServerContext): MemoryRouter | undefined {
  return ctx.modes.mode === 'WorkerLocal' ? ctx.memory : undefined;
}

async function executeIn(
  ctx: ServerContext,
  sessionId: string | undefined,
  handler: string,
  args: JsonValue,
  data: JsonObject | undefined,
  ttlSeconds?: number,
  request?: SessionRequest,
): Promise<Reply> {
  ctx.handlers.validate(handler, args);
  await ctx.modes.settled();
  const mode = ctx.modes.mode;
  const handlers = ctx.handlers;
  const label = handlers.metricLabel?.(handler) ?? handler;
  try {
    const work = (fence?: { owner: string; epoch: number }, remember?: ExecuteOptions['remember']) =>
      ctx.modes.run(async (backend): Promise<Reply> => {
        const step = (current: JsonValue, session: { id: string; version: number; anonymous: boolean }) =>
          handlers.run(handler, args, current, {
            sessionId: session.id,
            version: session.version,
            anonymous: session.anonymous,
            pool: ctx.pool,
            worker: ctx.worker,
          });
        if (sessionId === undefined) {
          const result = await backend.executeAnonymous(data ?? {}, step, ttlSeconds);
          return { status: 200, body: { result } };
        }
        // Recorded by a fenced activation (with its store write) or in a WorkerLocal session's memory.
        const idempotencyKey = fence || backend.mode === 'WorkerLocal' ? request?.idempotencyKey : undefined;
        const outcome = await backend.execute(sessionId, step, {
          ...(fence ? { fence } : {}),
          ...(remember ? { remember } : {}),
          ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
        });
        if ('replayed' in outcome)
          return { status: outcome.replayed.status, body: outcome.replayed.body, headers: { [REPLAYED_HEADER]: 'true' } };
        return { status: 200, body: executeReplyBody(outcome.session.id, outcome.session.version, outcome.result) };
      });
    const router = routerFor(ctx);
    const memory = memoryFor(ctx);
    const unfenced = () => (sessionId !== undefined && handlers.exclusive ? handlers.exclusive(sessionId, () => work()) : work());
    let reply: Reply;
    if (sessionId !== undefined && router && request)
      reply = await router.run(sessionId, request, (fence, remember) => work(fence, remember));
    else if (sessionId !== undefined && memory && request) reply = await memory.run(sessionId, request, unfenced);
    else reply = await unfenced();
    ctx.metrics.executed.inc({ handler: label, mode, result: reply.status === 200 ? 'ok' : `forwarded_${reply.status}` });
    return reply;
  } catch (error) {
    ctx.metrics.executed.inc({ handler: label, mode, result: toWorkerError(error).code });
    throw error;
  }
}

const ROUTES: Route[] = [
  {
    name: '/healthz',
    method: 'GET',
    pattern: /^\/healthz$/,
    session: false,
    run: async () => ({ status: 200, body: { status: 'ok' } }),
  },
  {
    name: '/readyz',
    method: 'GET',
    pattern: /^\/readyz$/,
    session: false,
    run: async (ctx) => {
      const r = ctx.readiness();
      return { status: r.ready ? 200 : 503, body: { ready: r.ready, reason: r.reason, mode: ctx.modes.mode, worker: ctx.worker } };
    },
  },
  {
    // The handler container's preStop hook: answered once this worker sends its handler nothing more
    // (handler-release.ts). It changes nothing and tells nothing, so it needs no credential.
    name: HANDLER_STOP_PATH,
    method: 'GET',
    pattern: /^\/lifecycle\/handler-stop$/,
    session: false,
    run: async (ctx) => {
      await ctx.handlerReleased?.();
      return { status: 200, body: { released: true } };
    },
  },
  {
    name: '/metrics',
    method: 'GET',
    pattern: /^\/metrics$/,
    session: false,
    run: async (ctx) => ({ status: 200, text: await ctx.registry.metrics(), contentType: ctx.registry.contentType }),
  },
  {
    name: '/openapi.json',
    method: 'GET',
    pattern: /^\/openapi\.json$/,
    session: false,
    run: async () => ({ status: 200, body: openApiDocument() }),
  },
  {
    name: '/v1/handlers',
    method: 'GET',
    pattern: /^\/v1\/handlers$/,
    session: false,
    run: async (ctx) => ({ status: 200, body: { handlers: await ctx.handlers.describe() } }),
  },
  {
    name: '/v1/sessions',
    method: 'POST',
    pattern: /^\/v1\/sessions$/,
    session: true,
    run: async (ctx, req) => {
      const text = await readBody(req, ctx.maxBodyBytes);
      const body = validateCreate(parseJsonBody(text, {}));
      checkTtl(body.ttlSeconds, ctx.modes.maxTtlSeconds);
      const create = async (): Promise<Reply> => {
        const view = await ctx.modes.run((b) =>
          b.create({ data: (body.data ?? {}) as JsonObject, ...(body.ttlSeconds ? { ttlSeconds: body.ttlSeconds } : {}) }),
        );
        ctx.onSessionCreated?.(view);
        return { status: 201, body: { session: view } };
      };
      return keyed(ctx, req, 'create', '/v1/sessions', text, create);
    },
  },
  {
    name: '/v1/sessions/:id',
    method: 'GET',
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    session: true,
    run: async (ctx, req, params) => {
      const id = sessionParam(params);
      const read = async (): Promise<Reply> => ({ status: 200, body: { session: await ctx.modes.run((b) => b.get(id)) } });
      const request = sessionRequest(req, `/v1/sessions/${encodeURIComponent(id)}`);
      await ctx.modes.settled();
      const memory = memoryFor(ctx);
      if (memory) return memory.run(id, request, read);
      // Degraded reads: with the store unreachable, a live activation answers from the session as it last
      // read or wrote it; its lease still holds, so nobody else can have written since (docs/activation.md).
      // Known unreachable (the last heartbeat failed): answered at once, without waiting out the store's timeouts.
      const degraded = (): Reply | undefined => {
        const known = routerFor(ctx)?.lastKnown(id);
        if (!known) return undefined;
        ctx.metrics.degradedReads.inc();
        return { status: 200, body: { session: viewOf(known) }, headers: { 'x-spo-served-from': 'activation' } };
      };
      if (ctx.storeUnreachable?.()) {
        const reply = degraded();
        if (reply) return reply;
      }
      try {
        return await read();
      } catch (error) {
        const code = toWorkerError(error).code;
        const reply = code === 'STORE_UNAVAILABLE' ? degraded() : undefined;
        if (reply) return reply;
        // Dual: a session the store lacks may be in a WorkerLocal peer's memory (a mode switch in progress). A
        // read that waited out this worker's own switch to WorkerLocal ran against memory: elsewhere() says retry.
        if (ctx.memory && (code === 'SESSION_NOT_FOUND' || code === 'SESSION_NOT_ON_WORKER'))
          return ctx.memory.elsewhere(id, request, error);
        throw error;
      }
    },
  },
  {
    name: '/v1/sessions/:id/holder',
    method: 'GET',
    pattern: /^\/v1\/sessions\/([^/]+)\/holder$/,
    session: false,
    run: async (ctx, _req, params) => {
      const id = sessionParam(params);
      return { status: 200, body: { held: ctx.holds?.(id) ?? false, worker: ctx.worker } };
    },
  },
  {
    name: '/v1/sessions/:id',
    method: 'DELETE',
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    session: true,
    run: async (ctx, req, params) => {
      const id = sessionParam(params);
      const remove = async (): Promise<Reply> => {
        await ctx.modes.run((b) => b.delete(id));
        return { status: 200, body: { deleted: true, sessionId: id } };
      };
      const request = sessionRequest(req, `/v1/sessions/${encodeURIComponent(id)}`);
      await ctx.modes.settled();
      const router = routerFor(ctx);
      const memory = memoryFor(ctx);
      if (router) return router.run(id, request, remove);
      return memory ? memory.run(id, request, remove) : remove();
    },
  },
  {
    name: '/v1/sessions/:id/execute',
    method: 'POST',
    pattern: /^\/v1\/sessions\/([^/]+)\/execute$/,
    session: true,
    run: async (ctx, req, params) => {
      const id = sessionParam(params);
      const text = await readBody(req, ctx.maxBodyBytes);
      const body = validateExecute(parseJsonBody(text));
      const request = sessionRequest(req, `/v1/sessions/${encodeURIComponent(id)}/execute`, text);
      return executeIn(ctx, id, body.handler, (body.args ?? null) as JsonValue, undefined, undefined, request);
    },
  },
  {
    name: '/v1/execute',
    method: 'POST',
    pattern: /^\/v1\/execute$/,
    session: true,
    run: async (ctx, req) => {
      const text = await readBody(req, ctx.maxBodyBytes);
      const body = validateAnonymous(parseJsonBody(text));
      checkTtl(body.ttlSeconds, ctx.modes.maxTtlSeconds);
      return keyed(ctx, req, 'execute', '/v1/execute', text, () =>
        executeIn(ctx, undefined, body.handler, (body.args ?? null) as JsonValue, (body.data ?? {}) as JsonObject, body.ttlSeconds),
      );
    },
  },
  {
    name: '/admin/mode',
    method: 'GET',
    pattern: /^\/admin\/mode$/,
    session: false,
    run: async (ctx, req) => {
      checkAdmin(ctx, req);
      return { status: 200, body: { mode: ctx.modes.mode, switching: ctx.modes.switchInProgress, localSessions: ctx.modes.local.size } };
    },
  },
  {
    name: '/admin/mode',
    method: 'POST',
    pattern: /^\/admin\/mode$/,
    session: false,
    run: async (ctx, req) => {
      checkAdmin(ctx, req);
      const { mode } = validateMode(await jsonBody(ctx, req));
      // A draining worker has written (or is writing) its memory to the store and will not again: a switch
      // to WorkerLocal now would take sessions into a memory that leaves with the process.
      const draining = ctx.drainingReason();
      if (draining)
        throw new WorkerError('WORKER_DRAINING', `worker ${ctx.worker} is draining (${draining}); it keeps its mode until it exits`, {
          retryAfterSeconds: 1,
        });
      const report = await ctx.modes.switchTo(mode);
      let from = report.from;
      for (const step of report.steps) {
        ctx.metrics.modeSwitches.inc({ from, to: step });
        from = step;
      }
      ctx.logger.info({ ...report }, 'session mode switched');
      return { status: 200, body: { mode: ctx.modes.mode, report } };
    },
  },
  {
    name: '/admin/handover',
    method: 'POST',
    pattern: /^\/admin\/handover$/,
    session: false,
    run: async (ctx, req) => {
      checkAdmin(ctx, req);
      const body = await jsonBody(ctx, req);
      if (!ctx.handover) throw new WorkerError('NOT_FOUND', 'this worker does not hand sessions over');
      return { status: 200, body: await ctx.handover(body) };
    },
  },
];

/** Every route the server answers, as `METHOD /path` (`:id` for a parameter); the OpenAPI test compares. */
export const SERVED_ROUTES: readonly string[] = ROUTES.map((r) => `${r.method} ${r.name}`);

function send(ctx: ServerContext, res: ServerResponse, reply: Reply, extraHeaders: Record<string, string> = {}): void {
  const headers: Record<string, string> = { 'x-spo-worker': ctx.worker, 'x-spo-mode': ctx.modes.mode, ...extraHeaders };
  // While draining, every answer closes its connection, so clients stop reusing connections to this
  // worker before it closes the idle ones at exit: a request sent on a connection the server is closing
  // at that moment fails after being sent (UND_ERR_SOCKET), and a POST with an unknown outcome is not resent.
  if (ctx.drainingReason()) headers.connection = 'close';
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { ...headers, 'content-type': reply.contentType ?? 'text/plain' });
    res.end(reply.text);
    return;
  }
  const payload = JSON.stringify(reply.body ?? {});
  res.writeHead(reply.status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(payload)),
  });
  res.end(payload);
}

/** The request listener of the worker's HTTP server. */
export function createRequestListener(ctx: ServerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(ctx, req, res);
  };
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  let routeName = 'unmatched';
  let tracked = false;
  ctx.metrics.inFlight.inc();
  try {
    const matches = ROUTES.filter((r) => r.pattern.test(path));
    const route = matches.find((r) => r.method === method);
    if (!route) {
      if (matches.length > 0)
        throw new WorkerError(
          'METHOD_NOT_ALLOWED',
          `${method} is not allowed on ${path}; allowed: ${matches.map((m) => m.method).join(', ')}`,
        );
      throw new WorkerError('NOT_FOUND', `no route ${method} ${path}`);
    }
    routeName = route.name;
    if (route.session) {
      const draining = ctx.drainingReason();
      if (draining)
        throw new WorkerError('WORKER_DRAINING', `worker ${ctx.worker} is draining (${draining}); retry on another worker`, {
          retryAfterSeconds: 1,
        });
      ctx.tracker.enter();
      tracked = true;
    }
    const params = route.pattern.exec(path)?.slice(1) ?? [];
    const reply = await route.run(ctx, req, params);
    send(ctx, res, reply, reply.headers);
    record(ctx, routeName, method, reply.status, started);
  } catch (error) {
    const e = toWorkerError(error);
    const headers: Record<string, string> = {};
    let body: object = e.toBody();
    if (e.code === 'INTERNAL') {
      // The client gets 'internal error' and an id to quote; the log gets the id and the cause.
      const requestId = randomUUID();
      ctx.logger.error({ err: e.cause ?? error, route: routeName, requestId }, 'request failed');
      body = { error: { code: e.code, message: 'internal error', requestId } };
      headers['x-request-id'] = requestId;
    } else if (e.cause !== undefined && e.code === 'HANDLER_ERROR') ctx.logger.warn({ err: e.cause, route: routeName }, 'handler failed');
    else ctx.logger.debug({ code: e.code, route: routeName }, 'request refused');
    if (e.retryAfterSeconds !== undefined) headers['retry-after'] = String(e.retryAfterSeconds);
    if (e.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="spo-admin"';
    // An unread (oversized) body: close the connection rather than read it all.
    if (e.code === 'PAYLOAD_TOO_LARGE' || e.code === 'UNSUPPORTED_MEDIA_TYPE') headers.connection = 'close';
    if (!res.headersSent) send(ctx, res, { status: e.status, body }, headers);
    else res.destroy();
    record(ctx, routeName, method, e.status, started);
  } finally {
    ctx.metrics.inFlight.dec();
    if (tracked) ctx.tracker.leave();
  }
}

function record(ctx: ServerContext, route: string, method: string, status: number, started: bigint): void {
  ctx.metrics.requests.inc({ route, method, status: String(status) });
  ctx.metrics.duration.observe({ route, method }, Number(process.hrtime.bigint() - started) / 1e9);
}

export function createHttpServer(ctx: ServerContext): http.Server {
  const server = http.createServer({ keepAliveTimeout: 5_000, requestTimeout: 60_000 }, createRequestListener(ctx));
  guardMalformedRequests(server);
  return server;
}
