import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { countsChange } from './refresh.ts';
import { deadWorkers, type StoreCounts } from './sessions.ts';
import { computeStatus } from './status.ts';

const pods: V1Pod[] = ['w-a', 'w-b'].map((name) => ({
  metadata: { name },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
}));

function counts(byOwner: Record<string, number>, extra: Partial<StoreCounts> = {}): StoreCounts {
  const map = new Map(Object.entries(byOwner));
  return { active: [...map.values()].reduce((a, b) => a + b, 0), byOwner: map, registered: ['w-a', 'w-b'], workers: [], ...extra };
}

/** A pool whose status is what the reconciler wrote after reading `seen`. */
function poolAfter(seen: StoreCounts | undefined): SessionPool {
  const pool = newSessionPool('web', 'ns', { replicas: 2, worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
  pool.status = computeStatus({
    pool,
    deployment: undefined,
    pods,
    store: seen
      ? { reachable: true, activeSessions: seen.active, byOwner: seen.byOwner }
      : { reachable: false, reason: 'StoreUnreachable', error: 'down' },
    scale: { desiredReplicas: 2 },
    now: new Date('2026-01-01T00:00:00Z'),
  });
  // The status comes back from the apiserver as JSON.
  return JSON.parse(JSON.stringify(pool)) as SessionPool;
}

describe('pool/refresh countsChange', () => {
  it('nothing to do when the counts match the status (same total, same spread)', () => {
    const seen = counts({ 'w-a': 3, 'w-b': 1 });
    expect(countsChange(poolAfter(seen), pods, counts({ 'w-b': 1, 'w-a': 3 }))).to.equal(undefined);
    expect(countsChange(poolAfter(counts({})), pods, counts({}))).to.equal(undefined);
  });

  it('reconciles when the total, the spread over workers or the anonymous count moves', () => {
    const pool = poolAfter(counts({ 'w-a': 3, 'w-b': 1 }));
    expect(countsChange(pool, pods, counts({ 'w-a': 3, 'w-b': 2 }))).to.equal('activeSessions 4 -> 5');
    expect(countsChange(pool, pods, counts({ 'w-a': 2, 'w-b': 2 }))).to.equal('sessions per worker changed');
    expect(countsChange(pool, pods, counts({ 'w-a': 3, 'w-b': 1 }, { anonymous: 2 }))).to.match(/anonymousSessions/);
  });

  it('reconciles for a dead worker (its sessions are released by the reconciler)', () => {
    const pool = poolAfter(counts({ 'w-a': 1 }));
    expect(countsChange(pool, pods, counts({ 'w-a': 1 }, { registered: ['w-a', 'w-b', 'w-gone'] }))).to.equal('dead workers w-gone');
  });

  it('a terminating pod’s worker is draining while it is registered, dead once it is not', () => {
    const twoSessions = (registered: string[]) => counts({ 'w-a': 1, 'w-b': 1 }, { registered });
    expect(deadWorkers(twoSessions(['w-a', 'w-b']), new Set(['w-a']), new Set(['w-b']))).to.deep.equal([]);
    expect(deadWorkers(twoSessions(['w-a']), new Set(['w-a']), new Set(['w-b']))).to.deep.equal(['w-b']);
    // Without a pod at all, registered or not, it is dead.
    expect(deadWorkers(twoSessions(['w-a', 'w-b']), new Set(['w-a']), new Set())).to.deep.equal(['w-b']);
  });

  it('reconciles when the store goes away or comes back, not while it stays away', () => {
    expect(countsChange(poolAfter(counts({})), pods, undefined)).to.equal('store unreachable');
    const down = poolAfter(undefined);
    expect(countsChange(down, pods, undefined)).to.equal(undefined);
    expect(countsChange(down, pods, counts({}))).to.equal('store reachable');
  });
});
