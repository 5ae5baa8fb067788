import { expect } from 'chai';
import { InvalidNameError, InvalidSessionIdError } from './errors.ts';
import { assertName, assertSessionId, keyLayout, keySlot, newSessionId } from './keys.ts';

describe('store keys', () => {
  it('makes unguessable url-safe ids of at least 128 bits', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newSessionId()));
    expect(ids.size).to.equal(1000);
    for (const id of ids) {
      expect(id).to.match(/^[A-Za-z0-9_-]{22}$/);
      expect(Buffer.from(id, 'base64url').length * 8).to.be.at.least(128);
      expect(() => assertSessionId(id)).to.not.throw();
    }
  });

  it('rejects malformed ids and names', () => {
    for (const id of ['', 'short', 'a'.repeat(65), 'has space'.padEnd(30, 'x'), '{tag}'.padEnd(30, 'x'), 42, null]) {
      expect(() => assertSessionId(id)).to.throw(InvalidSessionIdError);
    }
    for (const name of ['', 'a{b}', 'a b', '-lead', 'x'.repeat(254), 3]) expect(() => assertName('pool', name)).to.throw(InvalidNameError);
    expect(() => assertName('pool', 'pool-1.a:b_c')).to.not.throw();
  });

  it('computes Redis Cluster slots (CRC16 mod 16384) honouring hash tags', () => {
    // Reference values from the Redis Cluster specification and CLUSTER KEYSLOT.
    expect(keySlot('123456789')).to.equal(0x31c3 % 16384);
    expect(keySlot('foo')).to.equal(12182);
    expect(keySlot('{user1000}.following')).to.equal(keySlot('{user1000}.followers'));
    expect(keySlot('foo{}{bar}')).to.not.equal(keySlot('bar'));
    expect(keySlot('foo{{bar}}zap')).to.equal(keySlot('{bar'));
  });

  it('puts a session and its quarantine in one slot, and a pool index with its lease index and workers in one slot', () => {
    const keys = keyLayout('spo');
    const id = newSessionId();
    expect(keySlot(keys.session(id))).to.equal(keySlot(keys.quarantine(id)));
    expect(keys.session(id)).to.equal(`spo:s:{${id}}`);
    const pool = keySlot(keys.poolIndex('p'));
    expect(keySlot(keys.leaseIndex('p'))).to.equal(pool);
    expect(keySlot(keys.owners('p'))).to.equal(pool);
    expect(keySlot(keys.workers('p'))).to.equal(pool);
    expect(keys.ownerIndex('p', 'w')).to.equal('spo:{pool:p:owner:w}:sessions');
    expect(() => keyLayout('bad prefix')).to.throw(InvalidNameError);
  });
});
