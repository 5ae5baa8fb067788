// The contract's HTTP/1.1 client (http1.ts) against raw loopback servers that answer with each
// framing a handler in some language may use: content-length, chunked, up to the close, a 1xx
// first; broken and oversized answers; keep-alive reuse; a Unix socket.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Http1Failure, Http1Pool, ResponseReader, type Http1Answer } from './http1.ts';

/** A server that reads one request head+body (content-length) and writes `answer` raw. */
function rawServer(answer: (request: string) => string | Buffer | undefined, onConnection?: () => void, endAfter = false) {
  const server = net.createServer((socket) => {
    onConnection?.();
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/content-length: (\d+)/i.exec(buffer.slice(0, end))?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const request = buffer.slice(0, end + 4 + length);
        buffer = buffer.slice(end + 4 + length);
        const reply = answer(request);
        if (reply !== undefined && endAfter) socket.end(reply);
        else if (reply !== undefined) socket.write(reply);
      }
    });
    socket.on('error', () => undefined);
  });
  return server;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

const post = (pool: Http1Pool, body = '{"x":1}', maxResponseBytes = 1024) =>
  pool.request({ method: 'POST', path: '/contract/v1/invoke', headers: { 'content-type': 'application/json' }, body, maxResponseBytes })
    .answer;

async function failureOf(p: Promise<Http1Answer>): Promise<Http1Failure> {
  try {
    await p;
  } catch (error) {
    if (error instanceof Http1Failure) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('handler contract HTTP/1.1 client', () => {
  const servers: net.Server[] = [];
  const pools: Http1Pool[] = [];
  const start = async (answer: (request: string) => string | Buffer | undefined, onConnection?: () => void, endAfter = false) => {
    const server = rawServer(answer, onConnection, endAfter);
    servers.push(server);
    const pool = new Http1Pool({ host: '127.0.0.1', port: await listen(server) }, { idleMs: 4_000, maxIdle: 4 });
    pools.push(pool);
    return pool;
  };

  afterEach(async () => {
    for (const pool of pools.splice(0)) pool.close();
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  });

  it('writes the request in one piece with its headers and content-length, and reuses the connection', async () => {
    const requests: string[] = [];
    let connections = 0;
    const pool = await start(
      (request) => {
        requests.push(request);
        return 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
      },
      () => connections++,
    );
    for (let i = 0; i < 3; i++) {
      const answer = await post(pool, '{"é":1}');
      expect([answer.status, answer.body.toString()]).to.deep.equal([200, 'ok']);
    }
    expect(connections).to.equal(1);
    expect(requests[0]).to.match(/^POST \/contract\/v1\/invoke HTTP\/1\.1\r\n/);
    expect(requests[0]).to.include('content-type: application/json\r\n');
    expect(requests[0]).to.include('content-length: 8\r\n'); // bytes, not characters
    expect(requests[0]?.endsWith('\r\n\r\n{"é":1}'.replace('é', Buffer.from('é').toString('latin1')))).to.equal(true);
  });

  it('reads chunked answers, split anywhere, with extensions and trailers', async () => {
    const body = '{"result":"' + 'y'.repeat(300) + '"}';
    const chunked = `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${(10).toString(16)};ext=1\r\n${body.slice(0, 10)}\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\ntrailer: x\r\n\r\n`;
    const reader = new ResponseReader(1024, false);
    let answer: Http1Answer | undefined;
    for (let i = 0; i < chunked.length; i += 7) answer = reader.feed(Buffer.from(chunked.slice(i, i + 7), 'latin1')) ?? answer;
    expect(answer?.status).to.equal(200);
    expect(answer?.body.toString()).to.equal(body);
    expect(reader.keepAlive).to.equal(true);
    const pool = await start(() => chunked);
    expect((await post(pool)).body.toString()).to.equal(body);
    expect((await post(pool)).body.toString()).to.equal(body);
  });

  it('skips a 100 Continue head, and reads an answer without length up to the close', async () => {
    const reply = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"result":1}';
    const pool = await start(() => reply, undefined, true);
    const answer = await post(pool);
    expect([answer.status, answer.body.toString()]).to.deep.equal([200, '{"result":1}']);
  });

  it('closes after connection: close, and opens a new connection for the next request', async () => {
    let connections = 0;
    const pool = await start(
      () => 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n1',
      () => connections++,
    );
    await post(pool);
    await post(pool);
    expect(connections).to.equal(2);
  });

  it('refuses answers that are not HTTP, have a bad length or chunk size, or are over the limit', async () => {
    const cases: [string, string][] = [
      ['hello there\r\n\r\n', 'malformed'],
      ['HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n', 'malformed'],
      ['HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n12', 'malformed'],
      ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'malformed'],
      ['HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n', 'too_large'],
      [`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n800\r\n${'x'.repeat(2048)}\r\n0\r\n\r\n`, 'too_large'],
    ];
    for (const [reply, kind] of cases) {
      const pool = await start(() => reply);
      expect((await failureOf(post(pool))).kind, reply).to.equal(kind);
    }
  });

  it('a connection closed before or during the answer is broken; a closed port is refused', async () => {
    const early = await start(() => '', undefined, true);
    expect((await failureOf(post(early))).kind).to.equal('broken');
    const partial = await start(() => 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345', undefined, true);
    expect((await failureOf(post(partial))).kind).to.equal('broken');
    const closed = net.createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const nobody = new Http1Pool({ host: '127.0.0.1', port }, { idleMs: 4_000, maxIdle: 4 });
    pools.push(nobody);
    expect((await failureOf(post(nobody))).kind).to.equal('refused');
  });

  it('does not reuse a connection idle longer than idleMs', async () => {
    let connections = 0;
    const server = rawServer(
      () => 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1',
      () => connections++,
    );
    servers.push(server);
    const pool = new Http1Pool({ host: '127.0.0.1', port: await listen(server) }, { idleMs: 50, maxIdle: 4 });
    pools.push(pool);
    await post(pool);
    await new Promise((resolve) => setTimeout(resolve, 120));
    await post(pool);
    expect(connections).to.equal(2);
  });

  it('speaks over a Unix socket', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spo-http1-'));
    try {
      const socketPath = path.join(dir, 'handler.sock');
      const server = rawServer(() => 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nunix');
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      const pool = new Http1Pool({ socketPath }, { idleMs: 4_000, maxIdle: 4 });
      pools.push(pool);
      expect((await post(pool)).body.toString()).to.equal('unix');
      const missing = new Http1Pool({ socketPath: path.join(dir, 'missing.sock') }, { idleMs: 4_000, maxIdle: 4 });
      pools.push(missing);
      expect((await failureOf(post(missing))).kind).to.equal('refused');
    } finally {
      for (const pool of pools.splice(0)) pool.close();
      for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a header value with a line break (no header injection)', () => {
    const pool = new Http1Pool({ host: '127.0.0.1', port: 9 }, { idleMs: 4_000, maxIdle: 4 });
    pools.push(pool);
    expect(() => pool.request({ method: 'GET', path: '/', headers: { 'x-spo-request-id': 'a\r\nx: y' }, maxResponseBytes: 10 })).to.throw(
      /not allow/,
    );
  });
});
