import { expect } from 'chai';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { newSessionMigration, newSessionPool } from '../../api/index.ts';
import { MemoryJournal } from '../../migration/testing/memory-journal.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import { createLogger } from '../../observability/logger.ts';
import { desiredAdminTokenSecret } from '../pool/admin-token.ts';
import { parseHandoverAnswer, workerHandover, type HttpPost } from './worker-handover.ts';

const TOKEN = 'f'.repeat(64);

function setup(options: { podPhase?: string; secret?: V1Secret | 'missing'; answer?: { status: number; body: unknown } | Error } = {}) {
  const pool = newSessionPool('p', 'ns', { replicas: 2, worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
  pool.metadata.uid = 'pool-uid';
  pool.apiVersion = 'dspex.io/v1alpha1';
  pool.kind = 'SessionPool';
  const store = new MemorySessionStore();
  store.addWorker('ns/p', 'a');
  const registered = store.workers.get('ns/p/a')!;
  registered.endpoint = '127.0.0.1:9';
  const posts: { url: string; token: string; body: unknown; timeoutMs: number }[] = [];
  const post: HttpPost = async (url, token, body, timeoutMs) => {
    posts.push({ url, token, body: JSON.parse(body) as unknown, timeoutMs });
    const answer = options.answer ?? { status: 200, body: { results: [] } };
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const pod: V1Pod = { metadata: { name: 'a', namespace: 'ns' }, status: { phase: options.podPhase ?? 'Running' } };
  const secret = options.secret ?? desiredAdminTokenSecret(pool, TOKEN);
  const build = workerHandover({
    readSecret: async () => {
      if (secret === 'missing') throw Object.assign(new Error('not found'), { code: 404 });
      return secret;
    },
    pods: { get: (name) => (name === 'a' ? pod : undefined) },
    logger: createLogger('test').child({}, { level: 'silent' }),
    post,
    slackMs: 1000,
  });
  const m = newSessionMigration('evac', 'ns', { poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] } });
  const call = build(pool, { store, journal: new MemoryJournal(), pool: 'ns/p', keyPrefix: 'spo' }, m);
  return { call, posts };
}

const request = (source = 'a') => ({ migration: 'uid-1-r1', source, deadlineMs: 10_000, moves: [{ sessionId: 's1', target: 'b' }] });

describe('worker handover client (runner side of POST /admin/handover)', () => {
  it('sends the contract request to the registered endpoint with the pool admin token, and reads the answer', async () => {
    const { call, posts } = setup({ answer: { status: 200, body: { results: [{ sessionId: 's1', outcome: 'moved', epoch: 7 }] } } });
    expect(await call(request())).to.deep.equal([{ sessionId: 's1', outcome: 'moved', epoch: 7 }]);
    expect(posts).to.deep.equal([
      {
        url: 'http://127.0.0.1:9/admin/handover',
        token: TOKEN,
        body: { migration: 'ns/evac/uid-1-r1', deadlineMs: 10_000, moves: [{ sessionId: 's1', target: 'b' }] },
        timeoutMs: 11_000,
      },
    ]);
  });

  it('falls back (null) when the worker predates the endpoint (404), refuses, or does not answer', async () => {
    expect(await setup({ answer: { status: 404, body: 'not found' } }).call(request())).to.equal(null);
    expect(await setup({ answer: { status: 401, body: {} } }).call(request())).to.equal(null);
    expect(await setup({ answer: new Error('connect ECONNREFUSED') }).call(request())).to.equal(null);
    expect(
      await setup({ answer: { status: 200, body: { results: [{ sessionId: 's1', outcome: 'teleported' }] } } }).call(request()),
    ).to.equal(null);
  });

  it('asks nobody when the source pod is gone or not running, unregistered, or the token is unusable', async () => {
    const gone = setup();
    expect(await gone.call(request('ghost'))).to.equal(null);
    expect(gone.posts).to.have.length(0);
    const pending = setup({ podPhase: 'Pending' });
    expect(await pending.call(request())).to.equal(null);
    expect(pending.posts).to.have.length(0);
    const noSecret = setup({ secret: 'missing' });
    expect(await noSecret.call(request())).to.equal(null);
    expect(noSecret.posts).to.have.length(0);
  });

  it('parses only well-formed answers', () => {
    expect(parseHandoverAnswer({ results: [{ sessionId: 'x', outcome: 'idle', message: 'm' }] })).to.deep.equal([
      { sessionId: 'x', outcome: 'idle', message: 'm' },
    ]);
    expect(parseHandoverAnswer({})).to.equal(null);
    expect(parseHandoverAnswer(null)).to.equal(null);
    expect(parseHandoverAnswer({ results: [{ outcome: 'moved' }] })).to.equal(null);
  });
});
