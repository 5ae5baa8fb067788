// The runtime's client of the handler contract against a fake handler (a local HTTP server
// whose answer each test sets): every row of the contract's error table, the envelope it
// sends, keep-alive, readiness, and the failure metric of ExternalHandlers.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, Counter } from 'prom-client';
import { createLogger } from '../../observability/logger.ts';
import { freePort } from '../../../e2e/harness/ports.ts';
import { WorkerError } from '../errors.ts';
import { HandlerClient } from './client.ts';
import { ExternalHandlers } from './external.ts';
import { interpretReady } from './protocol.ts';

type Behaviour = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

const meta = { sessionId: 'S'.repeat(22), version: 4, anonymous: false, pool: 'p', worker: 'w' };

async function errorOf(p: Promise<unknown>): Promise<WorkerError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof WorkerError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('handler contract client', () => {
  let server: http.Server;
  let port: number;
  let behaviour: Behaviour;
  let connections = 0;
  const seen: { headers: http.IncomingHttpHeaders; body: string; url: string }[] = [];
  let client: HandlerClient;

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        seen.push({ headers: req.headers, body, url: req.url ?? '' });
        behaviour(req, body, res);
      });
    });
    server.keepAliveTimeout = 30_000;
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  beforeEach(() => {
    seen.length = 0;
    client = new HandlerClient({ port, timeoutMs: 300, maxSessionBytes: 1024 });
  });

  afterEach(() => client.close());

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const invoke = (handler = 'h', data = { a: 1 }) =>
    client.invoke({ requestId: 'req-1', handler, args: { x: 1 }, session: { id: meta.sessionId, version: 4, anonymous: false, data } });

  it('sends the contract envelope with its headers, and reads a success with and without data', async () => {
    behaviour = (_req, _body, res) => json(res, 200, { result: { ok: true }, data: { b: 2 } });
    expect(await invoke()).to.deep.equal({ result: { ok: true }, data: { b: 2 } });
    const sent = seen[0];
    expect(sent?.url).to.equal('/contract/v1/invoke');
    expect(sent?.headers['x-spo-request-id']).to.equal('req-1');
    expect(sent?.headers['x-spo-deadline-ms']).to.equal('300');
    expect(sent?.headers['content-type']).to.equal('application/json');
    expect(JSON.parse(sent?.body ?? '')).to.deep.equal({
      contract: 1,
      requestId: 'req-1',
      handler: 'h',
      args: { x: 1 },
      session: { id: meta.sessionId, version: 4, anonymous: false, data: { a: 1 } },
      deadlineMs: 300,
    });
    behaviour = (_req, _body, res) => json(res, 200, { result: null });
    const unchanged = await invoke();
    expect(unchanged).to.deep.equal({ result: null });
    expect('data' in unchanged).to.equal(false);
  });

  it('keeps one connection alive across sequential calls', async () => {
    behaviour = (_req, _body, res) => json(res, 200, { result: 1 });
    const before = connections;
    for (let i = 0; i < 5; i++) await invoke();
    expect(connections - before).to.equal(1);
  });

  const table: [string, Behaviour, string, number, RegExp?][] = [
    ['404 UNKNOWN_HANDLER', (_q, _b, res) => json(res, 404, { error: { code: 'UNKNOWN_HANDLER', message: 'x' } }), 'UNKNOWN_HANDLER', 400],
    [
      '400 INVALID_ARGS (message passed through)',
      (_q, _b, res) => json(res, 400, { error: { code: 'INVALID_ARGS', message: 'name must be a string' } }),
      'INVALID_ARGS',
      400,
      /^name must be a string$/,
    ],
    [
      '422 with a code (message passed through)',
      (_q, _b, res) => json(res, 422, { error: { code: 'NO_PROGRAM', message: 'define it first', details: { p: 'qa' } } }),
      'HANDLER_ERROR',
      422,
      /^define it first$/,
    ],
    [
      '422 with a code outside the pattern',
      (_q, _b, res) => json(res, 422, { error: { code: 'bad code', message: 'm' } }),
      'HANDLER_BAD_RESPONSE',
      502,
    ],
    [
      '500 (its message not passed)',
      (_q, _b, res) => json(res, 500, { error: { code: 'BOOM', message: 'secret trace' } }),
      'HANDLER_FAILED',
      502,
    ],
    ['a connection broken before the answer', (req) => req.socket.destroy(), 'HANDLER_FAILED', 502],
    ['no answer within the deadline', () => undefined, 'HANDLER_TIMEOUT', 504],
    [
      'a body that is not JSON',
      (_q, _b, res) => {
        res.writeHead(200, { 'content-length': 5 });
        res.end('hello');
      },
      'HANDLER_BAD_RESPONSE',
      502,
    ],
    ['200 without a result key', (_q, _b, res) => json(res, 200, { data: {} }), 'HANDLER_BAD_RESPONSE', 502],
    ['data that is not an object', (_q, _b, res) => json(res, 200, { result: 1, data: [1] }), 'HANDLER_BAD_RESPONSE', 502],
    ['another 4xx', (_q, _b, res) => json(res, 409, { error: { code: 'CONFLICT', message: 'm' } }), 'HANDLER_BAD_RESPONSE', 502],
    [
      'data over maxSessionBytes',
      (_q, _b, res) => json(res, 200, { result: 1, data: { blob: 'x'.repeat(2000) } }),
      'SESSION_TOO_LARGE',
      413,
    ],
    [
      'an answer over maxSessionBytes + 1 MiB',
      (_q, _b, res) => json(res, 200, { result: 'x'.repeat(1024 * 1024 + 2048) }),
      'HANDLER_BAD_RESPONSE',
      502,
    ],
  ];
  for (const [what, answer, code, status, message] of table) {
    it(`maps ${what} to ${status} ${code}`, async () => {
      behaviour = answer;
      const e = await errorOf(invoke());
      expect(e.code).to.equal(code);
      expect(e.status).to.equal(status);
      if (message) expect(e.message).to.match(message);
      else expect(e.message).to.not.match(/secret trace/);
    });
  }

  it('passes the handler code and details of a 422 in details', async () => {
    behaviour = (_q, _b, res) => json(res, 422, { error: { code: 'NO_PROGRAM', message: 'm', details: { p: 'qa' } } });
    expect((await errorOf(invoke())).details).to.deep.equal({ code: 'NO_PROGRAM', details: { p: 'qa' } });
  });

  it('maps a refused connection to 503 HANDLER_UNAVAILABLE with Retry-After', async () => {
    const closed = new HandlerClient({ port: await freePort(), timeoutMs: 300, maxSessionBytes: 1024 });
    const e = await errorOf(
      closed.invoke({ requestId: 'r', handler: 'h', args: null, session: { id: 's', version: 1, anonymous: true, data: {} } }),
    );
    closed.close();
    expect([e.code, e.status, e.retryAfterSeconds]).to.deep.equal(['HANDLER_UNAVAILABLE', 503, 1]);
  });

  it('reads readiness: 200 lists the handlers, 503 and no answer are not ready', async () => {
    behaviour = (_q, _b, res) =>
      json(res, 200, { ready: true, contract: 1, handlers: [{ name: 'b', description: 'B' }, { name: 'a' }, { name: '' }] });
    expect(await client.ready()).to.deep.equal({
      ready: true,
      reason: 'ok',
      handlers: [
        { name: 'a', description: '' },
        { name: 'b', description: 'B' },
      ],
    });
    expect(seen[0]?.url).to.equal('/contract/v1/ready');
    behaviour = (_q, _b, res) => json(res, 503, { ready: false, reason: 'loading the model' });
    expect(await client.ready()).to.include({ ready: false, reason: 'handler not ready: loading the model' });
    const closed = new HandlerClient({ port: await freePort(), timeoutMs: 300, maxSessionBytes: 1024 });
    expect((await closed.ready()).ready).to.equal(false);
    closed.close();
    expect(interpretReady(200, JSON.stringify({ ready: true, contract: 2 })).ready).to.equal(false);
  });

  describe('ExternalHandlers', () => {
    const registry = new Registry();
    const failures = new Counter({ name: 'test_handler_failures_total', help: 'h', labelNames: ['reason'], registers: [registry] });
    const counted = async (reason: string) => (await failures.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
    let external: ExternalHandlers;
    let ready = true;

    beforeEach(() => {
      failures.reset();
      ready = true;
      external = new ExternalHandlers({
        client,
        failures,
        logger: createLogger('test').child({}, { level: 'silent' }),
        polling: { baseMs: 10, maxMs: 20, readyEveryMs: 50 },
      });
    });

    afterEach(() => external.stop());

    const routes =
      (invokeAnswer: Behaviour): Behaviour =>
      (req, body, res) => {
        if (req.url === '/contract/v1/ready')
          json(
            res,
            ready ? 200 : 503,
            ready ? { ready: true, contract: 1, handlers: [{ name: 'h', description: 'd' }] } : { ready: false, reason: 'warming' },
          );
        else invokeAnswer(req, body, res);
      };

    it('runs a handler: new data marks a change, no data or the same data does not', async () => {
      behaviour = routes((_q, _b, res) => json(res, 200, { result: 'r', data: { a: 2 } }));
      expect(await external.run('h', null, { a: 1 }, meta)).to.deep.equal({ result: 'r', data: { a: 2 }, changed: true });
      behaviour = routes((_q, _b, res) => json(res, 200, { result: 'r', data: { a: 1 } }));
      expect((await external.run('h', null, { a: 1 }, meta)).changed).to.equal(false);
      behaviour = routes((_q, _b, res) => json(res, 200, { result: 'r' }));
      expect(await external.run('h', null, { a: 1 }, meta)).to.deep.equal({ result: 'r', data: { a: 1 }, changed: false });
      expect(await external.describe()).to.deep.equal([{ name: 'h', description: 'd' }]);
      // Metric labels: only listed names, so a client cannot mint series with made-up names.
      expect([external.metricLabel('h'), external.metricLabel('made_up_1')]).to.deep.equal(['h', 'unlisted']);
    });

    it('counts each failure by reason in the metric', async () => {
      behaviour = routes((_q, _b, res) => json(res, 500, {}));
      await errorOf(external.run('h', null, {}, meta));
      await errorOf(external.run('h', null, {}, meta));
      behaviour = routes((_q, _b, res) => json(res, 422, { error: { code: 'E', message: 'm' } }));
      await errorOf(external.run('h', null, {}, meta));
      expect([await counted('failed'), await counted('handler_error'), await counted('timeout')]).to.deep.equal([2, 1, 0]);
    });

    it('while the handler is not ready: 503 HANDLER_UNAVAILABLE without an invoke, ready again once it answers 200', async () => {
      ready = false;
      behaviour = routes((_q, _b, res) => json(res, 200, { result: 1 }));
      external.start();
      const e = await errorOf(external.run('h', null, {}, meta));
      expect([e.code, e.status]).to.deep.equal(['HANDLER_UNAVAILABLE', 503]);
      expect(external.readiness()).to.include({ ready: false, reason: 'handler not ready: warming' });
      expect(seen.filter((s) => s.url === '/contract/v1/invoke')).to.have.length(0);
      expect(await counted('unavailable')).to.equal(1);
      ready = true;
      for (let i = 0; i < 100 && !external.readiness().ready; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(external.readiness().ready).to.equal(true);
      expect((await external.run('h', null, {}, meta)).result).to.equal(1);
    });

    it('runs the requests of one session one at a time, of different sessions at once', async () => {
      const order: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const first = external.exclusive('s1', async () => {
        order.push('s1-a start');
        await gate;
        order.push('s1-a end');
      });
      const second = external.exclusive('s1', async () => void order.push('s1-b'));
      const other = external.exclusive('s2', async () => void order.push('s2'));
      await other;
      release();
      await Promise.all([first, second]);
      expect(order).to.deep.equal(['s1-a start', 's2', 's1-a end', 's1-b']);
    });
  });
});
