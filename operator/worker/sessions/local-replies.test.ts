import { expect } from 'chai';
import { LocalReplies } from './local-replies.ts';

describe('LocalReplies: a WorkerLocal session idempotency records', () => {
  const limits = { keepMs: 1_000, maxEntries: 3 };

  it('answers a recorded key until keepMs has passed, then reads it as absent', () => {
    const replies = new LocalReplies();
    replies.record('k', { at: 10_000, version: 2, result: { value: 1 } }, limits);
    expect(replies.lookup('k', limits, 10_999)).to.deep.equal({ at: 10_000, version: 2, result: { value: 1 } });
    expect(replies.lookup('k', limits, 11_000)).to.equal(undefined);
    expect(replies.lookup('other', limits, 10_000)).to.equal(undefined);
  });

  it('keeps at most maxEntries, the oldest dropped first, and drops expired ones at the next record', () => {
    const replies = new LocalReplies();
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) replies.record(key, { at: 10_000 + i, version: i, result: i }, limits);
    expect(replies.size).to.equal(3);
    expect(replies.lookup('a', limits, 10_010)).to.equal(undefined);
    expect(replies.lookup('d', limits, 10_010)?.version).to.equal(3);
    replies.record('e', { at: 11_002, version: 9, result: 9 }, limits);
    // b (10 001) and c (10 002) are a keepMs older than e: gone; d (10 003) stays.
    expect(replies.size).to.equal(2);
    expect(replies.lookup('d', limits, 11_002)?.version).to.equal(3);
  });
});
