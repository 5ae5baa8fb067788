// The OpenAPI 3.1 document of the worker's HTTP API, built from the TypeBox schemas the server
// validates request bodies with (validation.ts) and the response schemas below. The worker
// serves it at GET /openapi.json; docs/worker-openapi.json is the committed copy
// (`npm run gen:openapi`), from which a client in any language can be generated.
import Type, { type TSchema } from 'typebox';
import { SESSION_ID_PATTERN, SESSION_MODES } from './backends.ts';
import { WORKER_ERROR_STATUS, type WorkerErrorCode } from './errors.ts';
import { HANDLER_STOP_PATH } from './handler-release.ts';
import { AnonymousExecuteBody, CreateSessionBody, ExecuteBody, MAX_JSON_DEPTH, ModeBody } from './validation.ts';

const Mode = Type.Union(
  SESSION_MODES.map((m) => Type.Literal(m)),
  { description: 'the session mode' },
);
const Millis = Type.Integer({ minimum: 0, description: 'milliseconds since the epoch' });
const SessionId = Type.String({ pattern: SESSION_ID_PATTERN.source, description: 'a session id (base64url, 22 to 64 characters)' });

export const SessionSchema = Type.Object(
  {
    id: SessionId,
    data: Type.Unknown({ description: 'the session data: a JSON object' }),
    version: Type.Integer({ minimum: 1, description: 'increases by one on every change' }),
    createdAt: Millis,
    lastAccessedAt: Millis,
    ttlSeconds: Type.Integer({ minimum: 1, description: 'sliding time to live' }),
  },
  { additionalProperties: false },
);

export const ErrorSchema = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.Union(
          (Object.keys(WORKER_ERROR_STATUS) as WorkerErrorCode[]).map((c) => Type.Literal(c)),
          { description: 'stable machine-readable code' },
        ),
        message: Type.String({ description: 'what was wrong with the request; never internal detail' }),
        details: Type.Optional(Type.Unknown()),
        requestId: Type.Optional(
          Type.String({ description: 'INTERNAL only: quote it to the operator; the worker logged the cause under it' }),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const Readiness = Type.Object(
  { ready: Type.Boolean(), reason: Type.String(), mode: Mode, worker: Type.String() },
  { additionalProperties: false },
);

/** A documented operation: what the server answers on success, and which error codes it may answer. */
interface Operation {
  method: 'GET' | 'POST' | 'DELETE';
  /** The server's route name (`:id` for the session id). */
  path: string;
  operationId: string;
  summary: string;
  tags: string[];
  body?: { schema: TSchema; required: boolean; example: unknown };
  success: { status: number; description: string; schema?: TSchema; text?: string }[];
  errors: WorkerErrorCode[];
}

const BODY_ERRORS: WorkerErrorCode[] = ['INVALID_JSON', 'INVALID_REQUEST', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];
const SESSION_ERRORS: WorkerErrorCode[] = ['WORKER_DRAINING', 'MODE_SWITCH_IN_PROGRESS', 'STORE_UNAVAILABLE', 'INTERNAL'];
const BY_ID_ERRORS: WorkerErrorCode[] = [
  'INVALID_SESSION_ID',
  'SESSION_NOT_FOUND',
  'SESSION_NOT_ON_WORKER',
  'SESSION_MOVING',
  'SESSION_CORRUPTED',
];
const HANDLER_ERRORS: WorkerErrorCode[] = [
  'UNKNOWN_HANDLER',
  'INVALID_ARGS',
  'INVALID_SESSION_DATA',
  'HANDLER_ERROR',
  'SESSION_TOO_LARGE',
  'WRITE_UNCONFIRMED',
];

/** A keyed create or anonymous execute (recorded by pool, docs/activation.md). */
const KEYED_ERRORS: WorkerErrorCode[] = ['IDEMPOTENCY_KEY_IN_USE', 'IDEMPOTENCY_KEY_REUSED'];

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'GET',
    path: '/healthz',
    operationId: 'healthz',
    summary: 'liveness: 200 while the process runs',
    tags: ['health'],
    success: [{ status: 200, description: 'alive', schema: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false }) }],
    errors: [],
  },
  {
    method: 'GET',
    path: '/readyz',
    operationId: 'readyz',
    summary: 'readiness: 503 while draining, or while the store is unreachable and degraded mode is not allowed',
    tags: ['health'],
    success: [
      { status: 200, description: 'ready', schema: Readiness },
      { status: 503, description: 'not ready (the reason says why)', schema: Readiness },
    ],
    errors: [],
  },
  {
    method: 'GET',
    path: HANDLER_STOP_PATH,
    operationId: 'handlerStop',
    summary:
      'the handler container’s preStop hook: answers once this worker sends its handler nothing more (its stop’s drain is done; without a stop, after 5 s)',
    tags: ['health'],
    success: [
      {
        status: 200,
        description: 'the handler may stop',
        schema: Type.Object({ released: Type.Literal(true) }, { additionalProperties: false }),
      },
    ],
    errors: [],
  },
  {
    method: 'GET',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    tags: ['health'],
    success: [{ status: 200, description: 'Prometheus text exposition format', text: 'text/plain' }],
    errors: [],
  },
  {
    method: 'GET',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'this document',
    tags: ['meta'],
    success: [{ status: 200, description: 'the OpenAPI 3.1 document', schema: Type.Object({ openapi: Type.Literal('3.1.0') }) }],
    errors: [],
  },
  {
    method: 'GET',
    path: '/v1/handlers',
    operationId: 'listHandlers',
    summary: 'the handlers this worker runs',
    tags: ['sessions'],
    success: [
      {
        status: 200,
        description: 'handler names and descriptions',
        schema: Type.Object(
          { handlers: Type.Array(Type.Object({ name: Type.String(), description: Type.String() }, { additionalProperties: false })) },
          { additionalProperties: false },
        ),
      },
    ],
    errors: [],
  },
  {
    method: 'POST',
    path: '/v1/sessions',
    operationId: 'createSession',
    summary: "create a session (an empty body is `{}`); ttlSeconds may not exceed the pool's session TTL",
    tags: ['sessions'],
    body: { schema: CreateSessionBody, required: false, example: { data: { vars: { n: 0 } }, ttlSeconds: 600 } },
    success: [{ status: 201, description: 'created', schema: Type.Object({ session: SessionSchema }, { additionalProperties: false }) }],
    errors: [...BODY_ERRORS, 'SESSION_TOO_LARGE', 'WRITE_UNCONFIRMED', ...KEYED_ERRORS, ...SESSION_ERRORS],
  },
  {
    method: 'GET',
    path: '/v1/sessions/:id',
    operationId: 'getSession',
    summary: 'read a session (slides its TTL)',
    tags: ['sessions'],
    success: [
      { status: 200, description: 'the session', schema: Type.Object({ session: SessionSchema }, { additionalProperties: false }) },
    ],
    errors: [...BY_ID_ERRORS, ...SESSION_ERRORS],
  },
  {
    method: 'GET',
    path: '/v1/sessions/:id/holder',
    operationId: 'sessionHolder',
    summary:
      "whether this worker holds the session (its memory in WorkerLocal, else its activation): the peers' probe that routes a WorkerLocal request; nothing is read or touched",
    tags: ['sessions'],
    success: [
      {
        status: 200,
        description: "this worker's answer",
        schema: Type.Object({ held: Type.Boolean(), worker: Type.String() }, { additionalProperties: false }),
      },
    ],
    errors: ['INVALID_SESSION_ID'],
  },
  {
    method: 'DELETE',
    path: '/v1/sessions/:id',
    operationId: 'deleteSession',
    summary: 'delete a session',
    tags: ['sessions'],
    success: [
      {
        status: 200,
        description: 'deleted',
        schema: Type.Object({ deleted: Type.Literal(true), sessionId: SessionId }, { additionalProperties: false }),
      },
    ],
    errors: [...BY_ID_ERRORS, 'WRITE_UNCONFIRMED', ...SESSION_ERRORS],
  },
  {
    method: 'POST',
    path: '/v1/sessions/:id/execute',
    operationId: 'executeInSession',
    summary: 'run a handler in a session; the data is written back (version-checked) only if it changed',
    tags: ['sessions'],
    body: { schema: ExecuteBody, required: true, example: { handler: 'incr', args: { key: 'n' } } },
    success: [
      {
        status: 200,
        description: "the handler's result and the session's version after it",
        schema: Type.Object(
          { sessionId: SessionId, version: Type.Integer({ minimum: 1 }), result: Type.Unknown() },
          { additionalProperties: false },
        ),
      },
    ],
    errors: [...BODY_ERRORS, ...BY_ID_ERRORS, 'FENCED', 'CONFLICT', ...HANDLER_ERRORS, ...SESSION_ERRORS],
  },
  {
    method: 'POST',
    path: '/v1/execute',
    operationId: 'executeAnonymous',
    summary: 'run a handler in a temporary session, removed afterwards',
    tags: ['sessions'],
    body: { schema: AnonymousExecuteBody, required: true, example: { handler: 'incr', args: { key: 'n' }, data: { vars: { n: 41 } } } },
    success: [
      {
        status: 200,
        description: "the handler's result",
        schema: Type.Object({ result: Type.Unknown() }, { additionalProperties: false }),
      },
    ],
    errors: [...BODY_ERRORS, ...HANDLER_ERRORS, 'ANONYMOUS_SESSION_FAILED', ...KEYED_ERRORS, ...SESSION_ERRORS],
  },
  {
    method: 'GET',
    path: '/admin/mode',
    operationId: 'getMode',
    summary: "the worker's session mode",
    tags: ['admin'],
    success: [
      {
        status: 200,
        description: 'the mode',
        schema: Type.Object(
          { mode: Mode, switching: Type.Boolean(), localSessions: Type.Integer({ minimum: 0 }) },
          { additionalProperties: false },
        ),
      },
    ],
    errors: ['UNAUTHORIZED'],
  },
  {
    method: 'POST',
    path: '/admin/mode',
    operationId: 'switchMode',
    summary: 'switch the session mode on this worker, one step at a time; answers once the switch is complete',
    tags: ['admin'],
    body: { schema: ModeBody, required: true, example: { mode: 'Centralized' } },
    success: [
      {
        status: 200,
        description: 'switched',
        schema: Type.Object(
          {
            mode: Mode,
            report: Type.Object(
              {
                from: Mode,
                to: Mode,
                steps: Type.Array(Mode),
                copiedToStore: Type.Integer({ minimum: 0 }),
                pulledFromStore: Type.Integer({ minimum: 0 }),
                durationMs: Type.Number({ minimum: 0 }),
              },
              { additionalProperties: false },
            ),
          },
          { additionalProperties: false },
        ),
      },
    ],
    errors: [...BODY_ERRORS, 'UNAUTHORIZED', 'MODE_SWITCH_IN_PROGRESS', 'STORE_UNAVAILABLE', 'INTERNAL'],
  },
  {
    method: 'POST',
    path: '/admin/handover',
    operationId: 'handover',
    summary: 'hand live activations of this (source) worker to target workers (docs/activation.md); idempotent',
    tags: ['admin'],
    body: {
      schema: Type.Object(
        {
          migration: Type.String({ minLength: 1, maxLength: 512 }),
          deadlineMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
          moves: Type.Array(
            Type.Object(
              { sessionId: Type.String({ pattern: SESSION_ID_PATTERN.source }), target: Type.String() },
              { additionalProperties: false },
            ),
            { minItems: 1, maxItems: 1000 },
          ),
        },
        { additionalProperties: false },
      ),
      required: true,
      example: {
        migration: 'default/rebalance-1/1',
        deadlineMs: 10000,
        moves: [{ sessionId: 'AAAAAAAAAAAAAAAAAAAAAA', target: 'worker-b' }],
      },
    },
    success: [
      {
        status: 200,
        description: 'one result per move, in order',
        schema: Type.Object(
          {
            results: Type.Array(
              Type.Object(
                {
                  sessionId: Type.String(),
                  outcome: Type.Union([Type.Literal('moved'), Type.Literal('idle'), Type.Literal('busy'), Type.Literal('failed')]),
                  epoch: Type.Optional(Type.Integer({ minimum: 0 })),
                  message: Type.Optional(Type.String()),
                },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
      },
    ],
    errors: [...BODY_ERRORS, 'UNAUTHORIZED', 'INTERNAL'],
  },
];

/** `/v1/sessions/:id` -> `/v1/sessions/{id}`. */
export function openApiPath(route: string): string {
  return route.replace(/:([A-Za-z]+)/g, '{$1}');
}

const json = (schema: unknown) => ({ 'application/json': { schema } });
const HEADERS = {
  Worker: { description: "the worker's name", schema: { type: 'string' } },
  Mode: { description: "the worker's session mode", schema: { type: 'string' } },
  RetryAfter: { description: 'seconds to wait before resending (to another worker)', schema: { type: 'integer' } },
};
const COMMON_HEADERS = { 'x-spo-worker': { $ref: '#/components/headers/Worker' }, 'x-spo-mode': { $ref: '#/components/headers/Mode' } };
const RETRY_HEADER = { $ref: '#/components/headers/RetryAfter' };

function errorResponses(codes: readonly WorkerErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, WorkerErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = WORKER_ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, unknown> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const retry = status === 409 || status === 503;
    out[String(status)] = {
      description: list.join(', '),
      headers: retry ? { ...COMMON_HEADERS, 'Retry-After': RETRY_HEADER } : COMMON_HEADERS,
      content: json({ $ref: '#/components/schemas/Error' }),
    };
  }
  return out;
}

function operationObject(op: Operation): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const s of op.success) {
    responses[String(s.status)] = {
      description: s.description,
      headers: COMMON_HEADERS,
      content: s.text
        ? { [s.text]: { schema: { type: 'string' } } }
        : json(s.schema === SessionSchema ? { $ref: '#/components/schemas/Session' } : s.schema),
    };
  }
  Object.assign(responses, errorResponses(op.errors));
  const id = op.path.includes(':id')
    ? [{ name: 'id', in: 'path', required: true, description: 'the session id (percent-encoded)', schema: SessionId }]
    : undefined;
  return {
    operationId: op.operationId,
    summary: op.summary,
    tags: op.tags,
    ...(id ? { parameters: id } : {}),
    ...(op.body
      ? {
          requestBody: {
            required: op.body.required,
            content: { 'application/json': { schema: op.body.schema, example: op.body.example } },
          },
        }
      : {}),
    ...(op.tags.includes('admin') ? { security: [{ adminToken: [] }] } : {}),
    responses,
  };
}

let built: Record<string, unknown> | undefined;

/** The document (built once; plain JSON). */
export function openApiDocument(): Record<string, unknown> {
  if (built) return built;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const item = (paths[openApiPath(op.path)] ??= {});
    item[op.method.toLowerCase()] = operationObject(op);
  }
  // Through JSON: TypeBox schemas are plain JSON Schema, and the served document is exactly this text.
  built = JSON.parse(
    JSON.stringify({
      openapi: '3.1.0',
      info: {
        title: 'session-pool-operator worker API',
        version: '1',
        description:
          `The HTTP JSON API of a SessionPool worker (docs/worker.md). Request bodies are JSON objects nested at most ` +
          `${MAX_JSON_DEPTH} levels deep, with finite numbers only; every error is {"error": {"code", "message"}} ` +
          `and the 409 and 503 codes mean nothing was applied (resend, after Retry-After).`,
      },
      paths,
      components: {
        schemas: { Session: SessionSchema, Error: ErrorSchema },
        headers: HEADERS,
        securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'the pool admin token' } },
      },
    }),
  ) as Record<string, unknown>;
  return built;
}
