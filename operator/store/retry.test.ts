import { expect } from 'chai';
import { LruCache } from './lru.ts';
import { isTransient, retryDelay, withRetry, type RetryPolicy } from './retry.ts';
import { DegradedState } from './degraded.ts';
import { JournalFullError } from './errors.ts';

const policy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 10, maxDelayMs: 40, maxElapsedMs: 1000 };

describe('store retry', () => {
  it('classifies transient Redis errors', () => {
    for (const message of [
      'TRYAGAIN Multiple keys request during rehashing',
      'CLUSTERDOWN The cluster is down',
      'MOVED 3999 127.0.0.1:6381',
      'LOADING',
      "READONLY You can't write against a read only replica.",
      'Connection is closed.',
      'Too many Cluster redirections. Last error: x',
    ]) {
      expect(isTransient(new Error(message)), message).to.equal(true);
    }
    expect(isTransient(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).to.equal(true);
    for (const message of ['WRONGTYPE Operation against a key', 'ERR syntax error', 'NOSCRIPT No matching script'])
      expect(isTransient(new Error(message))).to.equal(false);
    expect(isTransient('CLUSTERDOWN')).to.equal(false);
  });

  it('backs off exponentially with full jitter, capped', () => {
    expect(retryDelay(policy, 1, () => 0.999)).to.equal(9);
    expect(retryDelay(policy, 2, () => 0.999)).to.equal(19);
    expect(retryDelay(policy, 5, () => 0.999)).to.equal(39);
    expect(retryDelay(policy, 3, () => 0)).to.equal(0);
  });

  it('retries transient errors within the attempt bound, and nothing else', async () => {
    let calls = 0;
    const sleeps: number[] = [];
    const hooks = { sleep: async (ms: number) => void sleeps.push(ms), random: () => 0.5 };
    const value = await withRetry(
      async () => {
        if (++calls < 3) throw new Error('TRYAGAIN');
        return 'ok';
      },
      policy,
      hooks,
    );
    expect(value).to.equal('ok');
    expect(sleeps).to.deep.equal([5, 10]);
    calls = 0;
    await withRetry(
      async () => {
        calls++;
        throw new Error('CLUSTERDOWN');
      },
      policy,
      hooks,
    ).catch((e: Error) => expect(e.message).to.equal('CLUSTERDOWN'));
    expect(calls).to.equal(4);
    calls = 0;
    await withRetry(
      async () => {
        calls++;
        throw new Error('ERR bad');
      },
      policy,
      hooks,
    ).catch(() => undefined);
    expect(calls).to.equal(1);
  });

  it('stops when the total time bound would be passed', async () => {
    let clock = 0;
    let calls = 0;
    await withRetry(
      async () => {
        calls++;
        clock += 400;
        throw new Error('TRYAGAIN');
      },
      { ...policy, maxAttempts: 100 },
      { now: () => clock, sleep: async () => undefined, random: () => 0.5 },
    ).catch(() => undefined);
    expect(calls).to.equal(3);
  });
});

describe('store degraded-mode structures', () => {
  it('LRU cache keeps the most recently used entries within its bound', () => {
    const lru = new LruCache<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).to.equal(1);
    lru.set('c', 3);
    expect(lru.get('b')).to.equal(undefined);
    expect(lru.get('a')).to.equal(1);
    expect(lru.size).to.equal(2);
  });

  it('journal is bounded', () => {
    const state = new DegradedState(10, 2);
    state.enqueue({ kind: 'delete', id: 'a', pool: 'p', at: 1 });
    state.enqueue({ kind: 'delete', id: 'b', pool: 'p', at: 2 });
    expect(() => state.enqueue({ kind: 'delete', id: 'c', pool: 'p', at: 3 })).to.throw(JournalFullError);
    expect(state.pendingFor('a')).to.have.length(1);
  });
});
