// Request bodies: TypeBox schemas (JSON Schema) compiled once, and a reader that enforces the
// size limit and turns malformed or invalid input into 400/413 errors with a reason.
import type { IncomingMessage } from 'node:http';
import Type, { type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { WorkerError } from './errors.ts';
import { SESSION_ID_PATTERN, SESSION_MODES } from './backends.ts';

const Data = Type.Record(Type.String(), Type.Unknown(), { description: 'the session data: a JSON object' });
const Ttl = Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600 });
const HandlerName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z][A-Za-z0-9_.-]*$' });

export const CreateSessionBody = Type.Object(
  { data: Type.Optional(Data), ttlSeconds: Type.Optional(Ttl) },
  { additionalProperties: false },
);
export const ExecuteBody = Type.Object({ handler: HandlerName, args: Type.Optional(Type.Unknown()) }, { additionalProperties: false });
export const AnonymousExecuteBody = Type.Object(
  { handler: HandlerName, args: Type.Optional(Type.Unknown()), data: Type.Optional(Data), ttlSeconds: Type.Optional(Ttl) },
  { additionalProperties: false },
);
export const ModeBody = Type.Object({ mode: Type.Union(SESSION_MODES.map((m) => Type.Literal(m))) }, { additionalProperties: false });

export type CreateSessionRequest = Static<typeof CreateSessionBody>;
export type ExecuteRequest = Static<typeof ExecuteBody>;
export type AnonymousExecuteRequest = Static<typeof AnonymousExecuteBody>;
export type ModeRequest = Static<typeof ModeBody>;

export interface BodyValidator<T> {
  (value: unknown): T;
}

/** A validator that returns the typed value or throws 400 INVALID_REQUEST naming the fields. */
export function validator<S extends TSchema>(schema: S): BodyValidator<Static<S>> {
  const compiled = Compile(schema);
  return (value: unknown) => {
    if (compiled.Check(value)) return value;
    const problems = [...compiled.Errors(value)]
      .filter((e) => e.keyword !== 'boolean')
      .slice(0, 5)
      .map((e) => {
        const extra =
          e.keyword === 'additionalProperties'
            ? `: ${JSON.stringify((e.params as { additionalProperties?: unknown }).additionalProperties)}`
            : '';
        return `${e.instancePath || 'body'} ${e.message}${extra}`;
      });
    throw new WorkerError('INVALID_REQUEST', `invalid request body: ${problems.join('; ')}`, { details: problems });
  };
}

export const validateCreate = validator(CreateSessionBody);
export const validateExecute = validator(ExecuteBody);
export const validateAnonymous = validator(AnonymousExecuteBody);
export const validateMode = validator(ModeBody);

export function validateSessionId(id: string): string {
  if (!SESSION_ID_PATTERN.test(id))
    throw new WorkerError('INVALID_SESSION_ID', `'${id.slice(0, 80)}' is not a session id (base64url, 22 to 64 characters)`);
  return id;
}

/** The deepest nesting of objects and arrays a request body may have (documented in docs/worker.md). */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a JSON body; an empty body is `emptyAs`. Throws INVALID_JSON on malformed text, on
 * nesting deeper than MAX_JSON_DEPTH (checked on the text before parsing, so that nothing
 * recursive ever sees a deep value) and on numbers JSON.parse turns into ±Infinity (1e999):
 * JSON.stringify would write them as null, so the stored value would not be the one sent.
 */
export function parseJsonBody(text: string, emptyAs: unknown = undefined): unknown {
  if (text.trim() === '') {
    if (emptyAs !== undefined) return emptyAs;
    throw new WorkerError('INVALID_JSON', 'the request body is empty; a JSON object is expected');
  }
  checkDepth(text, MAX_JSON_DEPTH);
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    // V8's messages quote a short excerpt of the body and a position: the client's own text.
    throw new WorkerError('INVALID_JSON', `the request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const where = nonFiniteNumberAt(value);
  if (where !== undefined)
    throw new WorkerError(
      'INVALID_JSON',
      `the number at ${where || '/'} is too large to represent (not a finite double); send it as a string`,
    );
  return value;
}

/** Refuses text whose brackets nest deeper than maxDepth, counting outside strings only. */
function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth)
        throw new WorkerError('INVALID_JSON', `the request body nests objects and arrays deeper than the limit of ${maxDepth} levels`);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
}

/** The JSON pointer of the first non-finite number in a parsed value, or undefined. Iterative. */
export function nonFiniteNumberAt(value: unknown): string | undefined {
  const stack: [unknown, string][] = [[value, '']];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [v, path] = next;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return path;
    } else if (v !== null && typeof v === 'object') {
      for (const [key, child] of Object.entries(v)) stack.push([child, `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`]);
    }
  }
  return undefined;
}

/** Refuses a client TTL above the pool's session TTL (the most a session may live idle). */
export function checkTtl(ttlSeconds: number | undefined, maxTtlSeconds: number): void {
  if (ttlSeconds !== undefined && ttlSeconds > maxTtlSeconds)
    throw new WorkerError('INVALID_REQUEST', `ttlSeconds ${ttlSeconds} is above this pool's maximum of ${maxTtlSeconds} seconds`, {
      details: [`/ttlSeconds must be at most ${maxTtlSeconds}`],
    });
}

/** Decodes a percent-encoded path segment; malformed encoding (e.g. '%E0%A4%A') is a 400. */
export function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new WorkerError('INVALID_SESSION_ID', `the session id in the path has malformed percent-encoding: '${segment.slice(0, 80)}'`);
  }
}

/** Reads a request body up to maxBytes; over it, 413 PAYLOAD_TOO_LARGE (early, by Content-Length). */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/(.+\+)?json\b|^text\/plain\b/i.test(type)) {
    return Promise.reject(new WorkerError('UNSUPPORTED_MEDIA_TYPE', `content-type '${type}' is not supported; send application/json`));
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(new WorkerError('PAYLOAD_TOO_LARGE', `the request body is ${declared} bytes, over the limit of ${maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        reject(new WorkerError('PAYLOAD_TOO_LARGE', `the request body is over the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (error) => {
      if (!failed) {
        failed = true;
        // The client went away mid-body (ECONNRESET): a request error, not a store outage.
        reject(new WorkerError('INVALID_REQUEST', 'the request body was not received completely', { cause: error }));
      }
    });
  });
}
