import { expect } from 'chai';
import { WorkerApiError, WorkerClient } from './client.ts';

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

describe('worker client', () => {
  it('retries retry-elsewhere answers on another worker, then succeeds', async () => {
    const seen: string[] = [];
    const answers = [
      reply(503, { error: { code: 'WORKER_DRAINING', message: 'x' } }, { 'retry-after': '0' }),
      reply(409, { error: { code: 'FENCED', message: 'x' } }),
      reply(200, { result: 7 }),
    ];
    const client = new WorkerClient({
      endpoints: ['a:1', 'b:2', 'c:3'],
      baseDelayMs: 1,
      fetch: async (url) => {
        seen.push(new URL(url instanceof Request ? url.url : url).host);
        return answers.shift() as Response;
      },
    });
    expect(await client.executeAnonymous('incr', { key: 'n' })).to.equal(7);
    expect(seen).to.have.length(3);
    expect(seen[1]).to.not.equal(seen[0]);
  });

  it('does not retry a 4xx that is not retryable, and gives up after maxAttempts', async () => {
    let calls = 0;
    const client = new WorkerClient({
      endpoints: ['a:1'],
      baseDelayMs: 1,
      maxAttempts: 3,
      fetch: async () => {
        calls++;
        return calls === 1
          ? reply(404, { error: { code: 'SESSION_NOT_FOUND', message: 'gone' } })
          : reply(503, { error: { code: 'STORE_UNAVAILABLE', message: 'x' } });
      },
    });
    const first = await client.getSession('AAAAAAAAAAAAAAAAAAAAAA').catch((e: unknown) => e);
    expect(first).to.be.instanceOf(WorkerApiError);
    expect((first as WorkerApiError).code).to.equal('SESSION_NOT_FOUND');
    const second = await client.getSession('AAAAAAAAAAAAAAAAAAAAAA').catch((e: unknown) => e);
    expect((second as WorkerApiError).code).to.equal('STORE_UNAVAILABLE');
    expect(calls).to.equal(4);
  });

  it('resends after connection refused but not after a broken connection on a POST', async () => {
    let calls = 0;
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const reset = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    const client = new WorkerClient({
      endpoints: ['a:1', 'b:2'],
      baseDelayMs: 1,
      fetch: async () => {
        calls++;
        if (calls === 1) throw refused;
        if (calls === 2) return reply(200, { result: 1 });
        throw reset;
      },
    });
    expect(await client.executeAnonymous('incr')).to.equal(1);
    const broken = await client.executeAnonymous('incr').catch((e: unknown) => e);
    expect((broken as WorkerApiError).code).to.equal('ECONNRESET');
    expect(calls).to.equal(3);
  });

  it('routes by session to the worker that created it', async () => {
    const seen: string[] = [];
    const client = new WorkerClient({
      endpoints: ['a:1', 'b:2', 'c:3'],
      routing: 'session',
      fetch: async (url, init) => {
        seen.push(new URL(url instanceof Request ? url.url : url).host);
        if (init?.method === 'POST' && new URL(url instanceof Request ? url.url : url).pathname.endsWith('/v1/sessions'))
          return reply(201, { session: { id: 'S'.repeat(22), version: 1 } });
        return reply(200, { sessionId: 'S'.repeat(22), version: 2, result: 1 });
      },
    });
    await client.createSession();
    for (let i = 0; i < 5; i++) await client.execute('S'.repeat(22), 'incr');
    expect(new Set(seen).size).to.equal(1);
  });

  it('sends one Idempotency-Key per non-GET call, the same on its retries, and resends a keyed execute after a broken connection', async () => {
    const keys: (string | null)[] = [];
    const reset = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    let calls = 0;
    const client = new WorkerClient({
      endpoints: ['a:1', 'b:2'],
      baseDelayMs: 1,
      fetch: async (_url, init) => {
        calls++;
        keys.push(new Headers(init?.headers).get('idempotency-key'));
        if (calls === 1) throw reset; // sent, outcome unknown
        if (calls === 2) return reply(409, { error: { code: 'SESSION_MOVING', message: 'x' } }, { 'retry-after': '0' });
        return reply(200, { sessionId: 'S'.repeat(22), version: 2, result: 1 });
      },
    });
    await client.execute('S'.repeat(22), 'incr');
    expect(calls).to.equal(3);
    expect(keys[0]).to.be.a('string').and.have.length.greaterThan(8);
    expect(keys).to.deep.equal([keys[0], keys[0], keys[0]]);
    await client.execute('S'.repeat(22), 'incr');
    expect(keys[3]).to.be.a('string').and.not.equal(keys[0]);
    await client.execute('S'.repeat(22), 'incr', undefined, { idempotencyKey: 'mine-1' });
    expect(keys[4]).to.equal('mine-1');
    await client.getSession('S'.repeat(22)).catch(() => undefined);
    expect(keys[5]).to.equal(null);
  });
});
