// The worker's HTTP layer in process, on the in-memory store: the fixed bad inputs of issue 12
// answer their 4xx with a reason and change nothing; keys named like Object.prototype's
// properties are stored and read as ordinary keys; an internal failure answers only
// 'internal error' and a request id. (The same cases against a real worker process on the Redis
// Cluster: fuzz.int.test.ts.)
import { expect } from 'chai';
import { connect } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from './config.ts';
import { BAD_INPUTS, LEAKS } from './testing/bad-inputs.ts';
import { MemorySessionStore } from './testing/memory-store.ts';
import { Worker } from './worker.ts';

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; requestId?: string } } & Record<string, unknown>;
  text: string;
}

describe('worker HTTP layer: bad input', function () {
  this.timeout(20_000);
  const store = new MemorySessionStore();
  const logLines: string[] = [];
  let worker: Worker;
  let base = '';

  before(async () => {
    const env = { SPO_POOL: 'p', SPO_WORKER_NAME: 'w1', SPO_HOST: '127.0.0.1', SPO_REDIS_NODES: '127.0.0.1:1' };
    const config = { ...parseConfig(env), port: 0 }; // any free port
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) });
    worker = new Worker({ config, store, registry: new Registry(), logger });
    await worker.start();
    base = `http://127.0.0.1:${worker.address?.port}`;
  });

  after(async () => {
    await worker.stop();
  });

  async function send(method: string, path: string, body?: string): Promise<Answer> {
    const r = await fetch(base + path, {
      method,
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
    });
    const text = await r.text();
    return { status: r.status, text, body: JSON.parse(text) as Answer['body'] };
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

  /** Writes raw bytes on one connection and reads until the server closes it. */
  function raw(bytes: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.end(bytes));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('answers unparseable HTTP with a JSON 400, and a request followed by junk with its own answer', async () => {
    expect(await raw('GARBAGE\r\n\r\n')).to.match(/^HTTP\/1.1 400 .*\r\n\r\n\{"error":\{"code":"INVALID_REQUEST"/s);
    // A DELETE with an unframed body (Node's client sends one): the body is a second, malformed request.
    const id = await newSession();
    const answer = await raw(`DELETE /v1/sessions/${id} HTTP/1.1\r\nhost: x\r\n\r\n/)(`);
    expect(answer).to.match(/^HTTP\/1.1 200 /);
    expect(answer).to.contain(`{"deleted":true,"sessionId":"${id}"}`);
  });

  it("accepts a TTL up to the pool's session TTL", async () => {
    const ok = await send('POST', '/v1/sessions', `{"ttlSeconds":${worker.config.sessionTtlSeconds}}`);
    expect(ok.status).to.equal(201);
    expect(ok.body.session).to.include({ ttlSeconds: worker.config.sessionTtlSeconds });
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
