import { expect } from 'chai';
import { InvalidNameError, InvalidSessionIdError } from './errors.ts';
import {
  INDEX_BUCKETS,
  assertName,
  indexBucket,
  assertPoolId,
  assertSessionId,
  keyLayout,
  keySlot,
  newSessionId,
  poolIdentity,
} from './keys.ts';

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
    for (const name of ['', 'a{b}', 'a b', '-lead', 'x'.repeat(254), 3]) expect(() => assertName('owner', name)).to.throw(InvalidNameError);
    expect(() => assertName('owner', 'pool-1.a:b_c')).to.not.throw();
  });

  it('computes Redis Cluster slots (CRC16 mod 16384) honouring hash tags', () => {
    // Reference values from the Redis Cluster specification and CLUSTER KEYSLOT.
    expect(keySlot('123456789')).to.equal(0x31c3 % 16384);
    expect(keySlot('foo')).to.equal(12182);
    expect(keySlot('{user1000}.following')).to.equal(keySlot('{user1000}.followers'));
    expect(keySlot('foo{}{bar}')).to.not.equal(keySlot('bar'));
    expect(keySlot('foo{{bar}}zap')).to.equal(keySlot('{bar'));
    // Non-ASCII keys are hashed from their UTF-8 bytes (values from cluster-key-slot, ioredis' own).
    expect(keySlot('{é}')).to.equal(10180);
    expect(keySlot('é')).to.equal(10180);
    expect(keySlot('xé{ab}')).to.equal(keySlot('{ab}'));
  });

  it('puts a session id in index bucket CRC16(id) mod 16, every bucket used by random ids', () => {
    const counts = new Array<number>(INDEX_BUCKETS).fill(0);
    for (let i = 0; i < 1600; i++) {
      const id = newSessionId();
      const bucket = indexBucket(id);
      // The slot hash of the id itself (16384 is a multiple of 16): what a reader in another language computes.
      expect(bucket).to.equal(keySlot(id) % INDEX_BUCKETS);
      counts[bucket]!++;
    }
    expect(Math.min(...counts)).to.be.greaterThan(50); // 100 expected per bucket
    expect(indexBucket('123456789')).to.equal(0x31c3 % 16);
  });

  it('puts a session and its quarantine in one slot, and a pool index with its lease index and workers in one slot', () => {
    const keys = keyLayout('spo');
    const id = newSessionId();
    expect(keySlot(keys.session('ns/p', id))).to.equal(keySlot(keys.quarantine('ns/p', id)));
    expect(keys.session('ns/p', id)).to.equal(`spo:s:{ns/p|${id}}`);
    expect(keys.quarantine('ns/p', id)).to.equal(`spo:q:{ns/p|${id}}`);
    // The same id in another pool is another key (and usually another slot).
    expect(keys.session('ns/q', id)).to.not.equal(keys.session('ns/p', id));
    // A bucket's indexes share its slot; the buckets of a pool are different slots.
    const bucket = keySlot(keys.poolIndex('p', 3));
    expect(keySlot(keys.leaseIndex('p', 3))).to.equal(bucket);
    expect(keySlot(keys.owners('p', 3))).to.equal(bucket);
    expect(keySlot(keys.ownerIndex('p', 'w', 3))).to.equal(bucket);
    expect(keys.ownerIndex('p', 'w', 3)).to.equal('spo:{pool:p#3}:owner:w');
    expect(new Set(Array.from({ length: INDEX_BUCKETS }, (_, b) => keySlot(keys.poolIndex('p', b)))).size).to.equal(INDEX_BUCKETS);
    expect(keys.legacy.ownerIndex('p', 'w')).to.equal('spo:{pool:p:owner:w}:sessions');
    expect(() => keyLayout('bad prefix')).to.throw(InvalidNameError);
  });

  describe('pool identity', () => {
    const keys = keyLayout('spo');
    /** Every key a pool owns, with the owners given (each owner index is a key of the pool). */
    const keysOf = (pool: string, owners: readonly string[]): string[] => [
      ...[0, 7, INDEX_BUCKETS - 1].flatMap((b) => [
        keys.poolIndex(pool, b),
        keys.leaseIndex(pool, b),
        keys.owners(pool, b),
        ...owners.map((owner) => keys.ownerIndex(pool, owner, b)),
      ]),
      keys.workers(pool),
      keys.legacy.poolIndex(pool),
      ...owners.map((owner) => keys.legacy.ownerIndex(pool, owner)),
    ];

    it('is <namespace>/<name>, in every key of the pool', () => {
      const id = poolIdentity('team-a', 'web');
      expect(id).to.equal('team-a/web');
      expect(keys.poolIndex(id, 5)).to.equal('spo:{pool:team-a/web#5}:sessions');
      expect(keys.leaseIndex(id, 5)).to.equal('spo:{pool:team-a/web#5}:leases');
      expect(keys.owners(id, 5)).to.equal('spo:{pool:team-a/web#5}:owners');
      expect(keys.workers(id)).to.equal('spo:{pool:team-a/web}:workers');
      expect(keys.ownerIndex(id, 'web-0', 5)).to.equal('spo:{pool:team-a/web#5}:owner:web-0');
    });

    it('refuses a namespace or name that could make two pools share an identity', () => {
      for (const [namespace, name] of [
        ['a/b', 'c'],
        ['a', 'b/c'],
        ['a:b', 'c'],
        ['a', 'b:owner:c'],
        ['A', 'c'],
        ['a', 'C'],
        ['a.b', 'c'], // a namespace is a DNS label: no dots
        ['', 'c'],
        ['a', ''],
        ['x'.repeat(64), 'c'],
        ['a', 'x'.repeat(254)],
        ['a', '{c}'],
      ] as const)
        expect(() => poolIdentity(namespace, name), `${namespace} ${name}`).to.throw(InvalidNameError);
      expect(poolIdentity('x'.repeat(63), 'y'.repeat(253))).to.have.length(317);
      expect(() => assertPoolId(poolIdentity('x'.repeat(63), 'y'.repeat(253)))).to.not.throw();
    });

    it('the store refuses pool ids with a key separator or hash-tag brace', () => {
      for (const bad of ['a:b', 'p:owner:w', '{x}', 'a}b', '/lead', 'a b', '', 'x'.repeat(318), 7])
        expect(() => assertPoolId(bad), String(bad)).to.throw(InvalidNameError);
      for (const good of ['p', 'team-a/web', 'a.b/c-d', 'A_b']) expect(() => assertPoolId(good), good).to.not.throw();
    });

    it('never maps two different pools to the same key, nor a pool key to another pool’s owner index (tricky names)', () => {
      const pairs: [string, string][] = [
        ['a-b', 'c'],
        ['a', 'b-c'],
        ['a', 'b.c'],
        ['ab', 'c'],
        ['a', 'bc'],
        ['default', 'sample'],
        ['other', 'sample'],
        ['sample', 'default'],
        ['a', 'owner'],
        ['owner', 'a'],
        ['a', 'b'],
        ['a', 'b.owner.c'],
        ['pool', 'a'],
        ['a', 'pool'],
      ];
      const owners = ['w', 'c', 'b-c', 'owner', 'a', 'sample-0', 'x:y', 'owner:w'];
      const ownerOf = new Map<string, string>();
      for (const [namespace, name] of pairs) {
        const id = poolIdentity(namespace, name);
        for (const key of keysOf(id, owners)) {
          const previous = ownerOf.get(key);
          expect(previous, `${key} of ${id} and ${previous}`).to.equal(undefined);
          ownerOf.set(key, id);
        }
      }
      expect(ownerOf.size).to.equal(pairs.length * keysOf('n/p', owners).length);
    });

    it('never maps two different pools to the same key (every namespace/name over a small alphabet)', () => {
      // Exhaustive over short names of 'a', 'b', '-', '.', which is where separators could meet.
      const words = (alphabet: string, max: number): string[] => {
        let level = [''];
        const all: string[] = [];
        for (let n = 1; n <= max; n++) {
          level = level.flatMap((w) => [...alphabet].map((c) => w + c));
          all.push(...level);
        }
        return all;
      };
      const namespaces = words('ab-', 3).filter((w) => /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(w));
      const names = words('ab-.', 3).filter((w) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(w));
      const seen = new Map<string, string>();
      let pools = 0;
      for (const namespace of namespaces)
        for (const name of names) {
          const id = poolIdentity(namespace, name);
          pools++;
          for (const key of keysOf(id, ['a', 'a-b'])) {
            const previous = seen.get(key);
            expect(previous, `${key}: ${id} and ${previous}`).to.equal(undefined);
            seen.set(key, id);
          }
        }
      expect(pools).to.be.greaterThan(100);
      expect(seen.size).to.equal(pools * keysOf('n/p', ['a', 'a-b']).length);
    });
  });
});
