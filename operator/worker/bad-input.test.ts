// The worker's request listener driven in process, without sockets, on the in-memory store: the
// fixed bad inputs of issue 12 answer their 4xx with a reason and change nothing; keys named
// like Object.prototype's properties are stored and read as ordinary keys; an internal failure
// answers only 'internal error' and a request id. (The same cases against a real worker process
// on the Redis Cluster, and malformed HTTP on a real socket: fuzz.int.test.ts.)
import { expect } from 'chai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SessionModes } from './backends.ts';
import { builtinHandlers } from './handlers.ts';
import { createWorkerMetrics } from './metrics.ts';
import { InFlight, createRequestListener } from './server.ts';
import { BAD_INPUTS, LEAKS } from './testing/bad-inputs.ts';
import { MemorySessionStore } from '../store/testing/memory-store.ts';

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; requestId?: string } } & Record<string, unknown>;
  text: string;
}

const SESSION_TTL = 3600;

describe('worker HTTP layer: bad input', function () {
  const store = new MemorySessionStore();
  const logLines: string[] = [];
  const registry = new Registry();
  const listener = createRequestListener({
    pool: 'p',
    worker: 'w1',
    maxBodyBytes: 1 << 20,
    adminToken: 'secret',
    modes: new SessionModes(
      { pool: 'p', worker: 'w1', store, sessionTtlSeconds: SESSION_TTL, anonTtlSeconds: 300, maxSessionBytes: 1 << 20 },
      'Centralized',
    ),
    handlers: builtinHandlers(),
    metrics: createWorkerMetrics(registry),
    registry,
    logger: pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) }),
    tracker: new InFlight(),
    drainingReason: () => undefined,
    readiness: () => ({ ready: true, reason: 'ok' }),
  });

  /** One request through the listener: the body as a stream, the answer captured from writeHead/end. */
  function send(method: string, url: string, body?: string): Promise<Answer> {
    const req = Object.assign(Readable.from(body === undefined ? [] : [Buffer.from(body)]), {
      method,
      url,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    }) as unknown as IncomingMessage;
    return new Promise((resolve, reject) => {
      let status = 0;
      const res = {
        headersSent: false,
        writeHead(code: number) {
          status = code;
          res.headersSent = true;
        },
        end(payload: string) {
          resolve({ status, text: payload, body: JSON.parse(payload) as Answer['body'] });
        },
        destroy: () => reject(new Error('response destroyed')),
      };
      listener(req, res as unknown as ServerResponse);
    });
  }

  async function newSession(): Promise<string> {
    const created = await send('POST', '/v1/sessions', '{"data":{"vars":{"n":1}}}');
    expect(created.status).to.equal(201);
    return (created.body.session as { id: string }).id;
  }

  for (const input of BAD_INPUTS) {
    it(`${input.name}: ${input.status} ${input.code} with a reason, nothing written`, async () => {
      const id = await newSession();
      const before = await store.count('p');
      const answer = await send(input.method, input.path.replace(':id', id), input.body);
      expect(answer.status, answer.text).to.equal(input.status);
      expect(answer.body.error?.code).to.equal(input.code);
      expect(answer.body.error?.message).to.match(input.reason);
      for (const leak of LEAKS) expect(answer.text).to.not.match(leak);
      expect(await store.count('p')).to.equal(before);
      expect((await send('GET', `/v1/sessions/${id}`)).body.session).to.include({ version: 1 });
    });
  }

  it("accepts a TTL up to the pool's session TTL", async () => {
    const ok = await send('POST', '/v1/sessions', `{"ttlSeconds":${SESSION_TTL}}`);
    expect(ok.status).to.equal(201);
    expect(ok.body.session).to.include({ ttlSeconds: SESSION_TTL });
  });

  it("stores and reads keys named like Object.prototype's properties as ordinary keys", async () => {
    const id = await newSession();
    const run = (handler: string, args: unknown) => send('POST', `/v1/sessions/${id}/execute`, JSON.stringify({ handler, args }));
    for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      const absent = await run('get', { key });
      expect(absent.body.result, key).to.deep.equal({ key, value: null, exists: false });
    }
    const set = await run('set', { key: '__proto__', value: { polluted: true } });
    expect(set.status).to.equal(200);
    expect(set.body.version).to.equal(2);
    expect((await run('get', { key: '__proto__' })).body.result).to.deep.equal({
      key: '__proto__',
      value: { polluted: true },
      exists: true,
    });
    expect((await run('incr', { key: 'constructor' })).body.result).to.deep.equal({ key: 'constructor', value: 1 });
    const session = (await send('GET', `/v1/sessions/${id}`)).text;
    expect(session).to.contain('"vars":{"n":1,"__proto__":{"polluted":true},"constructor":1}');
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('answers an internal failure with only "internal error" and a request id', async () => {
    const id = await newSession();
    const original = store.get.bind(store);
    // A bug's text, with an address in it (a store error naming a node would read the same).
    store.get = () => Promise.reject(new TypeError('Cannot read properties of undefined (reading x) at 10.1.2.3:6379'));
    try {
      const answer = await send('GET', `/v1/sessions/${id}`);
      expect(answer.status).to.equal(500);
      expect(answer.body.error).to.have.keys('code', 'message', 'requestId');
      expect(answer.body.error?.code).to.equal('INTERNAL');
      expect(answer.body.error?.message).to.equal('internal error');
      const requestId = answer.body.error?.requestId ?? '';
      expect(requestId).to.match(/^[0-9a-f-]{36}$/);
      for (const leak of LEAKS) expect(answer.text).to.not.match(leak);
      // The worker's log has the cause under the same id.
      const logged = logLines
        .map((l) => JSON.parse(l) as { requestId?: string; err?: { message?: string } })
        .find((l) => l.requestId === requestId);
      expect(logged?.err?.message).to.contain('10.1.2.3:6379');
    } finally {
      store.get = original;
    }
  });
});
