import { expect } from 'chai';
import type { RedisSessionStore } from './index.ts';
import { requestFingerprint, requestRecordKey } from './request-records.ts';
import { testStore, uniquePrefix } from './test-helpers.int.ts';
import type { RequestRecordRef } from './types.ts';

describe('store: records of keyed creates and anonymous executes', () => {
  const prefix = uniquePrefix('requests');
  let store: RedisSessionStore;
  before(() => {
    ({ store } = testStore(prefix));
  });
  after(() => store.close());

  const ref = (key: string, claimant: string, body = '{"handler":"incr"}', pool = 'ns/keyed'): RequestRecordRef => ({
    pool,
    scope: 'execute',
    key,
    fingerprint: requestFingerprint('/v1/execute', body),
    claimant,
  });

  it('claims a key once: pending for others, recorded after completion, refused for another request', async () => {
    expect(await store.claimRequest(ref('k1', 'w1.a'), 30_000)).to.deep.equal({ state: 'claimed' });
    // The same claimant again (a retried call): still its claim. Another: pending.
    expect(await store.claimRequest(ref('k1', 'w1.a'), 30_000)).to.deep.equal({ state: 'claimed' });
    expect(await store.claimRequest(ref('k1', 'w2.b'), 30_000)).to.deep.equal({ state: 'pending' });
    // Only the claimant records; a completion by another is refused.
    expect(await store.completeRequest(ref('k1', 'w2.b'), { status: 200, body: { result: 'other' } })).to.equal(false);
    expect(await store.completeRequest(ref('k1', 'w1.a'), { status: 200, body: { result: 42 } })).to.equal(true);
    expect(await store.completeRequest(ref('k1', 'w1.a'), { status: 200, body: { result: 42 } })).to.equal(true);
    expect(await store.claimRequest(ref('k1', 'w2.c'), 30_000)).to.deep.equal({
      state: 'recorded',
      reply: { status: 200, body: { result: 42 } },
    });
    expect(await store.claimRequest(ref('k1', 'w2.c', '{"handler":"echo"}'), 30_000)).to.deep.equal({ state: 'mismatch' });
    // The record is a session-shaped key of the pool, expiring within the keep time (1 hour).
    const ttl = await store.core.redis.pttl(requestRecordKey(store.core, 'ns/keyed', 'execute', 'k1'));
    expect(ttl).to.be.within(3_500_000, 3_600_000);
  });

  it('frees a key when its claim is abandoned or lapses', async () => {
    expect((await store.claimRequest(ref('k2', 'w1.a'), 30_000)).state).to.equal('claimed');
    await store.abandonRequest(ref('k2', 'w2.b')); // not its claim: kept
    expect((await store.claimRequest(ref('k2', 'w2.b'), 30_000)).state).to.equal('pending');
    await store.abandonRequest(ref('k2', 'w1.a'));
    expect((await store.claimRequest(ref('k2', 'w2.b'), 1_000)).state).to.equal('claimed');
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect((await store.claimRequest(ref('k2', 'w3.c'), 30_000)).state).to.equal('claimed');
    // The late claimant's completion is refused: its claim lapsed and another holds the key.
    expect(await store.completeRequest(ref('k2', 'w2.b'), { status: 200, body: null })).to.equal(false);
  });

  it('keeps keys apart by pool and by route, and refuses bad input before writing', async () => {
    expect((await store.claimRequest(ref('k3', 'w1.a'), 30_000)).state).to.equal('claimed');
    expect((await store.claimRequest(ref('k3', 'w1.b', undefined, 'other/pool'), 30_000)).state).to.equal('claimed');
    expect((await store.claimRequest({ ...ref('k3', 'w1.c'), scope: 'create' }, 30_000)).state).to.equal('claimed');
    for (const bad of [
      { ...ref('a b', 'w1.a') },
      { ...ref('k4', 'w1 a') },
      { ...ref('k4', 'w1.a'), fingerprint: '' },
      { ...ref('k4', 'w1.a'), pool: 'bad{pool}' },
      { ...ref('k4', 'w1.a'), scope: 'delete' as never },
    ]) {
      let code: string | undefined;
      try {
        await store.claimRequest(bad, 30_000);
      } catch (error) {
        code = (error as { code?: string }).code;
      }
      expect(code, JSON.stringify(bad)).to.be.oneOf(['INVALID_ARGUMENT', 'INVALID_NAME']);
    }
    expect(await store.core.redis.exists(requestRecordKey(store.core, 'ns/keyed', 'execute', 'k4'))).to.equal(0);
  });
});
