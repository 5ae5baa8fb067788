// Property-based fuzzing of a running worker process on the real Redis Cluster: generated
// methods, paths, headers and bodies (fast-check), sent one at a time, bounded by count and
// time. Asserted for every request: never a 5xx; a 4xx is a JSON error with a code and a reason
// that leaks nothing internal, and writes nothing (the pool's sessions, their versions and data
// are the same before and after). The bad inputs of issue 12 are fixed cases, sent first.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import http from 'node:http';
import { connect } from 'node:net';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { createSessionStore } from '../store/index.ts';
import { poolIdentity } from '../store/keys.ts';
import type { SessionStore } from '../store/types.ts';
import { BAD_INPUTS, LEAKS } from './testing/bad-inputs.ts';
import { WORKER_TEST_NAMESPACE, startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';
import { MAX_JSON_DEPTH } from './validation.ts';

const RUNS = 2_000;
const TIME_LIMIT_MS = 20_000;
const pool = `fuzz-${Date.now().toString(36)}`;
/** The pool identity the worker uses in the store. */
const poolId = poolIdentity(WORKER_TEST_NAMESPACE, pool);

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

interface Request {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** Sends one request on a fresh connection; a connection the server cut (413 mid-body) is status 0. */
function send(base: string, r: Request): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: r.method, path: r.path, headers: r.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'] ?? '',
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', () => resolve({ status: res.statusCode ?? 0, contentType: '', text: '' }));
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, contentType: '', text: String(error) }));
    req.end(r.body);
  });
}

/**
 * What a write would change: every session id of the pool, with its version and data. Not the
 * last-access time: a refusal after the session was read (a handler's 422) slides the TTL, as any access does.
 */
async function snapshot(store: SessionStore): Promise<string> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list(poolId, { cursor, limit: 500 });
    ids.push(...page.ids);
    cursor = page.cursor;
  } while (cursor !== null);
  const rows: string[] = [];
  for (const id of ids.sort()) {
    const r = await store.get(id, { pool: poolId, touch: false });
    rows.push(r ? `${id} v${r.version} ${JSON.stringify(r.data)}` : `${id} gone`);
  }
  return rows.join('\n');
}

// ---- generators ----------------------------------------------------------------------------

const pathChar = fc.constantFrom(...'abcAZ09-_.~%/?=&:@!$+,;'.split(''), '%2F', '%00', '%E0%A4%A', '%ZZ', '..', '%C3%A9');
const junk = fc.array(pathChar, { maxLength: 24 }).map((parts) => parts.join(''));
const handlerName = fc.constantFrom('incr', 'get', 'set', 'define_program', 'execute_program', 'list_programs', 'sleep', 'nope', '', '1x');
const nastyKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'n', '', 'x'.repeat(300));
const jsonish = fc.jsonValue({ maxDepth: 4 });
const ttl = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom(60, 3600, 3601, 2_592_000, 1e12, 1.5, -0));

/** Object bodies close to the schemas (so validation, handlers and TTL checks are reached), with odd values. */
const nearValidBody = fc
  .record(
    {
      handler: handlerName,
      args: fc.oneof(
        fc.record({ key: nastyKey, value: jsonish, by: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }),
        fc.record(
          { programId: nastyKey, signature: fc.constantFrom('a -> b', 'constructor -> toString', '->', 'a b'), inputs: jsonish },
          {
            requiredKeys: [],
          },
        ),
        fc.record({ ms: fc.integer({ min: -1, max: 5 }) }),
        jsonish,
      ),
      data: fc.oneof(fc.dictionary(nastyKey, jsonish, { maxKeys: 3 }), jsonish),
      ttlSeconds: ttl,
      mode: fc.constantFrom('Dual', 'Centralized', 'WorkerLocal', 'Local'),
      extra: jsonish,
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

/** Text that is not what JSON.parse would take as is: numbers out of range, deep nesting, garbage. */
const hostileBody = fc.oneof(
  fc.constantFrom(
    '{"data":{"x":1e999}}',
    '{"handler":"set","args":{"key":"k","value":-1e400}}',
    '{"handler":"incr","args":{"key":"n","by":1e999}}',
    `{"data":${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}}`,
    '{"handler":"get","args":{"key":"__proto__"},"__proto__":{"ttlSeconds":1}}',
    '{"data":{"__proto__":{"admin":true}}}',
    '"\\u0000"',
    '[]',
    'null',
    '{',
    '\uFEFF{}',
  ),
  fc.integer({ min: 1, max: 30_000 }).map((depth) => '{"data":{"a":' + '['.repeat(depth) + ']'.repeat(depth) + '}}'),
  fc.string({ maxLength: 64 }),
);

const body = fc.option(
  fc.oneof(
    nearValidBody,
    hostileBody,
    jsonish.map((v) => JSON.stringify(v)),
  ),
  { nil: undefined },
);

const headers = fc.record(
  {
    'content-type': fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/merge-patch+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'garbage',
      '',
    ),
    authorization: fc.constantFrom('Bearer wrong', 'Bearer ', 'Basic YTpi', 'bearer x'),
    accept: fc.constantFrom('*/*', 'text/html', 'application/xml'),
    'x-spo-worker': fc.string({ maxLength: 8, unit: fc.constantFrom('a', 'b', '1') }),
    'content-encoding': fc.constantFrom('gzip', 'identity'),
  },
  { requiredKeys: [] },
);

const method = fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS');

// ---- the test ------------------------------------------------------------------------------

describe('worker fuzzing (property-based, a running worker on the Redis Cluster)', function () {
  this.timeout(180_000);
  let worker: WorkerProcess;
  let store: SessionStore;
  let known: string[] = [];

  before(async () => {
    // The admin routes need a token the fuzzer never sends, so no generated request switches the mode.
    worker = await startWorkerProcess({
      pool,
      name: 'fuzz-1',
      env: { SPO_ADMIN_TOKEN: randomBytes(16).toString('hex'), SPO_SESSION_TTL_SECONDS: '3600' },
    });
    store = createSessionStore({ nodes: redisTestEnv().endpoints });
    known = await ensureSessions([]);
  });

  after(async () => {
    await worker?.stop();
    await store?.close();
  });

  /** Keeps three sessions with data to aim at (a generated DELETE may remove one). */
  async function ensureSessions(ids: string[]): Promise<string[]> {
    const alive: string[] = [];
    for (const id of ids) if (await store.exists(id, { pool: poolId })) alive.push(id);
    while (alive.length < 3) {
      const r = await send(worker.base, {
        method: 'POST',
        path: '/v1/sessions',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: { vars: { n: 1, constructor: 2 }, programs: { p: { signature: 'a -> b', executionCount: 0 } } } }),
      });
      expect(r.status, r.text).to.equal(201);
      alive.push((JSON.parse(r.text) as { session: { id: string } }).session.id);
    }
    return alive;
  }

  /** Sends one request and checks the properties; returns the status. */
  async function check(request: Request): Promise<number> {
    // Read fresh for every request: fast-check replays inputs out of order while shrinking.
    const before = await snapshot(store);
    const answer = await send(worker.base, request);
    const what = `${request.method} ${request.path} ${JSON.stringify(request.headers)} ${request.body?.slice(0, 200)} -> ${answer.status} ${answer.text.slice(0, 300)}`;
    expect(answer.status, what).to.not.be.within(500, 599);
    if (answer.status >= 400 && answer.status < 500) {
      if (request.method !== 'HEAD') {
        expect(answer.contentType, what).to.match(/^application\/json/);
        const error = (JSON.parse(answer.text) as { error?: { code?: unknown; message?: unknown } }).error;
        expect(error?.code, what).to.be.a('string');
        expect(error?.message, what).to.be.a('string').and.not.equal('');
      }
      for (const leak of LEAKS) expect(answer.text, what).to.not.match(leak);
      expect(await snapshot(store), `a ${answer.status} wrote: ${what}`).to.equal(before);
    }
    return answer.status;
  }

  it('answers each fixed bad input of issue 12 with its 4xx and writes nothing', async () => {
    for (const input of BAD_INPUTS) {
      const before = await snapshot(store);
      const request = {
        method: input.method,
        path: input.path.replace(':id', known[0] as string),
        headers: { 'content-type': 'application/json' },
        body: input.body,
      };
      const answer = await send(worker.base, request);
      expect(answer.status, `${input.name}: ${answer.text}`).to.equal(input.status);
      const error = (JSON.parse(answer.text) as { error: { code: string; message: string } }).error;
      expect(error.code, input.name).to.equal(input.code);
      expect(error.message, input.name).to.match(input.reason);
      expect(await snapshot(store), input.name).to.equal(before);
    }
  });

  /** Writes raw bytes on one connection and reads until the worker closes it (10 s at most). */
  function raw(bytes: string): Promise<string> {
    return new Promise((resolve, reject) => {
      // write, not end: Node's server answers nothing on a connection its client half-closed.
      const socket = connect(Number(new URL(worker.base).port), '127.0.0.1', () => socket.write(bytes));
      socket.setTimeout(10_000, () => socket.destroy());
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('answers HTTP it cannot parse with a JSON 4xx, and a request followed by junk with its own answer', async () => {
    expect(await raw('GARBAGE\r\n\r\n')).to.match(/^HTTP\/1.1 400 .*\r\n\r\n\{"error":\{"code":"INVALID_REQUEST"/s);
    expect(await raw(`GET /healthz HTTP/1.1\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`)).to.match(/^HTTP\/1.1 431 .*"code":"INVALID_REQUEST"/s);
    // A DELETE with an unframed body (Node's client sends one): the body reads as a second, malformed
    // request. The DELETE was carried out, so its client must get its 200, not the junk's 400.
    const id = (await ensureSessions([]))[0] as string;
    const answer = await raw(`DELETE /v1/sessions/${id} HTTP/1.1\r\nhost: x\r\n\r\n/)(`);
    expect(answer).to.match(/^HTTP\/1.1 200 /);
    expect(answer).to.contain(`{"deleted":true,"sessionId":"${id}"}`);
    expect(await store.exists(id, { pool: poolId })).to.equal(false);
  });

  it('stores the key __proto__ and does not find constructor (through Redis)', async () => {
    const id = known[0] as string;
    const run = async (args: unknown) =>
      JSON.parse(
        (
          await send(worker.base, {
            method: 'POST',
            path: `/v1/sessions/${id}/execute`,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ handler: args && typeof args === 'object' && 'value' in args ? 'set' : 'get', args }),
          })
        ).text,
      ) as { result: unknown };
    expect((await run({ key: 'toString' })).result).to.deep.equal({ key: 'toString', value: null, exists: false });
    expect((await run({ key: '__proto__', value: 5 })).result).to.deep.equal({ key: '__proto__', value: 5 });
    expect((await run({ key: '__proto__' })).result).to.deep.equal({ key: '__proto__', value: 5, exists: true });
    const stored = await store.get(id, { pool: poolId, touch: false });
    expect(Object.hasOwn((stored?.data as { vars: object }).vars, '__proto__')).to.equal(true);
  });

  it(`never answers 5xx and writes nothing on a 4xx, for generated requests (at most ${RUNS} or ${TIME_LIMIT_MS / 1000} s)`, async () => {
    const statuses = new Map<number, number>();
    const sessionId = fc.oneof(
      fc.constantFrom(...known),
      fc.constantFrom('A'.repeat(22), 'x', '%E0%A4%A', '..%2F..', '%41'.repeat(22), 'A'.repeat(65)),
      junk,
    );
    const query = fc.option(junk, { nil: undefined });
    const withQuery = (p: string, q: string | undefined) => (q === undefined ? p : `${p}?${q}`);
    // Mostly a route with its own method (so bodies reach validation, handlers and the store), sometimes anything.
    const onRoute = fc.oneof(
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/sessions') }),
      fc.record({ method: fc.constant('GET'), path: sessionId.map((id) => `/v1/sessions/${id}`) }),
      fc.record({ method: fc.constant('POST'), path: sessionId.map((id) => `/v1/sessions/${id}/execute`) }),
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/execute') }),
      fc.record({ method: fc.constantFrom('GET', 'POST'), path: fc.constant('/admin/mode') }),
      fc.record({ method: fc.constant('GET'), path: fc.constantFrom('/v1/handlers', '/healthz', '/readyz', '/openapi.json', '/metrics') }),
    );
    const anywhere = fc.record({
      method,
      path: fc.oneof(
        sessionId.map((id) => `/v1/sessions/${id}`),
        sessionId.map((id) => `/v1/sessions/${id}/execute`),
        fc.constantFrom('/v1/sessions', '/v1/execute', '/admin/mode', '/', '//v1/sessions', '/v1/sessions/'),
        junk.map((j) => `/${j}`),
      ),
    });
    const target = fc
      .tuple(fc.oneof({ arbitrary: onRoute, weight: 4 }, { arbitrary: anywhere, weight: 1 }), query)
      .map(([t, q]) => ({ method: t.method, path: withQuery(t.path, q) }));
    await fc.assert(
      fc.asyncProperty(fc.record({ target, headers, body }), async ({ target: t, headers: h, body: b }) => {
        const request = { method: t.method, path: t.path, headers: h, body: b };
        const status = await check(request);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status >= 200 && status < 300 && request.method === 'DELETE') known = await ensureSessions(known);
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    const counts = [...statuses].sort((a, b) => a[0] - b[0]);
    console.log(`      fuzz: ${counts.reduce((n, [, c]) => n + c, 0)} requests, by status ${JSON.stringify(Object.fromEntries(counts))}`);
    // The generators reach both the refusals and the successes.
    expect(counts.some(([s]) => s >= 400 && s < 500)).to.equal(true);
    expect(counts.some(([s]) => s >= 200 && s < 300)).to.equal(true);
  });
});
