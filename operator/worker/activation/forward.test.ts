// The forwarder over contract/http1.ts: what it sends, what it reads back, and how it fails.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FORWARDED_HEADER, Forwarder, OwnerUnreachable } from './forward.ts';

describe('forwarder', () => {
  let server: http.Server;
  let endpoint: string;
  const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        const reply = JSON.stringify({ ok: true });
        res.writeHead(req.method === 'DELETE' ? 409 : 200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': String(Buffer.byteLength(reply)),
          'x-spo-worker': 'owner-1',
          'retry-after': '1',
        });
        res.end(reply);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends the body as given with its headers and the forwarded mark, and reads status, body and headers', async () => {
    const forwarder = new Forwarder('w-self');
    try {
      const body = '{"handler":"incr","args":{"key":"n"}}';
      const reply = await forwarder.send(endpoint, 'POST', '/v1/sessions/abc/execute', body, { 'idempotency-key': 'k-1' });
      expect(reply).to.deep.equal({
        status: 200,
        body: '{"ok":true}',
        contentType: 'application/json; charset=utf-8',
        retryAfter: '1',
        worker: 'owner-1',
      });
      const got = seen.at(-1)!;
      expect(got.method).to.equal('POST');
      expect(got.url).to.equal('/v1/sessions/abc/execute');
      expect(got.body).to.equal(body);
      expect(got.headers[FORWARDED_HEADER]).to.equal('w-self');
      expect(got.headers['idempotency-key']).to.equal('k-1');
      expect(got.headers['content-type']).to.equal('application/json');
      const deleted = await forwarder.send(endpoint, 'DELETE', '/v1/sessions/abc', undefined, {});
      expect(deleted.status).to.equal(409);
      expect(seen.at(-1)!.method).to.equal('DELETE');
    } finally {
      forwarder.close();
    }
  });

  it('a refused connection is OwnerUnreachable, marked refused (nothing was sent)', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const forwarder = new Forwarder('w-self');
    try {
      const error = await forwarder.send(`127.0.0.1:${port}`, 'GET', '/v1/sessions/abc', undefined, {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(OwnerUnreachable);
      expect((error as OwnerUnreachable).refused).to.equal(true);
    } finally {
      forwarder.close();
    }
  });

  it('an answer that does not come in time is an error, not OwnerUnreachable (the request was sent)', async () => {
    const silent = http.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const forwarder = new Forwarder('w-self');
    try {
      const port = (silent.address() as AddressInfo).port;
      const error = await forwarder.send(`127.0.0.1:${port}`, 'POST', '/x', '{}', {}, 100).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(Error);
      expect(error).not.to.be.instanceOf(OwnerUnreachable);
    } finally {
      forwarder.close();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
