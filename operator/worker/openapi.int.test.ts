// The OpenAPI document against a running worker process on the Redis Cluster: the worker serves
// it at /openapi.json; every documented operation answers its example request with a documented
// success status and a body of the documented schema, and answers a bad request with a documented
// error status and the Error schema. (That every served route is documented: openapi.test.ts.)
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Compile } from 'typebox/compile';
import { startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';
import { openApiDocument } from './openapi.ts';

type Json = Record<string, unknown>;

interface OperationDoc {
  operationId: string;
  requestBody?: { content: { 'application/json': { example: unknown } } };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}

const pool = `oas-${Date.now().toString(36)}`;
const token = randomBytes(16).toString('hex');

/** The schema with every `#/...` reference replaced by its target (the references do not nest into cycles). */
function deref(node: unknown, doc: Json): unknown {
  if (Array.isArray(node)) return node.map((n) => deref(n, doc));
  if (node === null || typeof node !== 'object') return node;
  const ref = (node as Json).$ref;
  if (typeof ref === 'string') {
    const target = ref
      .slice(2)
      .split('/')
      .reduce<unknown>((n, key) => (n as Json)[key], doc);
    return deref(target, doc);
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, deref(v, doc)]));
}

describe('worker OpenAPI document against a running worker', function () {
  this.timeout(120_000);
  let worker: WorkerProcess;
  let served: Json;

  before(async () => {
    worker = await startWorkerProcess({ pool, name: 'oas-1', env: { SPO_ADMIN_TOKEN: token } });
    const r = await fetch(`${worker.base}/openapi.json`);
    expect(r.status).to.equal(200);
    served = (await r.json()) as Json;
  });

  after(async () => {
    await worker?.stop();
  });

  async function newSession(): Promise<string> {
    const r = await fetch(`${worker.base}/v1/sessions`, { method: 'POST', body: '{"data":{"vars":{"n":1}}}' });
    expect(r.status).to.equal(201);
    return ((await r.json()) as { session: { id: string } }).session.id;
  }

  function operations(): { method: string; path: string; op: OperationDoc }[] {
    return Object.entries(served.paths as Record<string, Record<string, OperationDoc>>).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    );
  }

  /** Checks an answer against the operation's documented responses; returns the body. */
  async function expectDocumented(what: string, op: OperationDoc, r: Response): Promise<unknown> {
    const documented = op.responses[String(r.status)];
    const text = await r.text();
    expect(documented, `${what}: status ${r.status} is not documented (${text.slice(0, 300)})`).to.not.equal(undefined);
    const [mediaType, media] = Object.entries(documented?.content ?? {})[0] ?? [];
    expect(r.headers.get('content-type') ?? '', what).to.contain(mediaType ?? 'none');
    expect(r.headers.get('x-spo-worker'), what).to.equal('oas-1');
    if (mediaType !== 'application/json') return text;
    const body = JSON.parse(text) as unknown;
    const check = Compile(deref(media?.schema, served) as Parameters<typeof Compile>[0]);
    expect(
      check.Check(body),
      `${what}: ${text.slice(0, 300)} does not match ${JSON.stringify([...check.Errors(body)].slice(0, 3))}`,
    ).to.equal(true);
    return body;
  }

  it('serves the document the worker is built from', () => {
    expect(served).to.deep.equal(openApiDocument());
  });

  it('answers every documented operation, called with its example, with a documented success and body', async () => {
    const seen: string[] = [];
    for (const { method, path, op } of operations()) {
      const url = worker.base + path.replace('{id}', await newSession());
      const example = op.requestBody?.content['application/json'].example;
      const r = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        ...(example === undefined ? {} : { body: JSON.stringify(example) }),
      });
      expect(r.status, `${method} ${path}`).to.be.below(300);
      await expectDocumented(`${method} ${path}`, op, r);
      seen.push(op.operationId);
    }
    expect(seen).to.have.length.of.at.least(12);
  });

  it('answers a bad request to every operation that documents one with a documented error of the Error schema', async () => {
    let checked = 0;
    for (const { method, path, op } of operations()) {
      if (!Object.keys(op.responses).some((s) => s.startsWith('4'))) continue;
      const admin = path.startsWith('/admin');
      // A malformed session id where there is one, malformed JSON where a body is read, no token on admin routes.
      const url = worker.base + path.replace('{id}', 'not-an-id');
      const r = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(op.requestBody && !path.includes('{id}') && !admin ? { body: '{"unclosed": ' } : {}),
      });
      expect(r.status, `${method} ${path}`).to.be.within(400, 499);
      const body = (await expectDocumented(`${method} ${path} (bad)`, op, r)) as { error: { code: string } };
      expect(body.error.code).to.be.oneOf(admin ? ['UNAUTHORIZED'] : ['INVALID_SESSION_ID', 'INVALID_JSON']);
      checked++;
    }
    expect(checked).to.be.at.least(7);
  });
});
