import { expect } from 'chai';
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { LeaderElector } from './leader-election.ts';
import { eventually, testKubeConfig, uniqueName } from './test-support.ts';

describe('kube/leader-election (apiserver)', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let api: CoordinationV1Api;

  before(() => {
    kc = testKubeConfig();
    api = kc.makeApiClient(CoordinationV1Api);
  });

  function pair(lease: string): { a: LeaderElector; b: LeaderElector; log: string[] } {
    const log: string[] = [];
    const make = (identity: string): LeaderElector =>
      new LeaderElector({
        api,
        namespace: 'default',
        name: lease,
        identity,
        registry: new Registry(),
        onStartedLeading: () => log.push(`${identity}:start`),
        onStoppedLeading: () => {
          log.push(`${identity}:stop`);
        },
      });
    return { a: make('a'), b: make('b'), log };
  }

  it('exactly one of two electors leads; the other takes over within 15 s when the leader dies', async () => {
    const lease = uniqueName('spo-kube-le');
    const { a, b, log } = pair(lease);
    a.start();
    b.start();
    try {
      const leader = await eventually('a leader', () => (a.isLeader() ? a : b.isLeader() ? b : undefined), 10_000);
      const standby = leader === a ? b : a;
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).to.have.length(1);
      expect(log).to.have.length(1);
      const stored = await api.readNamespacedLease({ name: lease, namespace: 'default' });
      expect(stored.spec?.holderIdentity).to.equal(leader === a ? 'a' : 'b');

      const died = Date.now();
      await leader.stop({ release: false }); // renewals stop, the Lease is left as it was
      await eventually('takeover', () => standby.isLeader(), 20_000, 20);
      const tookMs = Date.now() - died;
      expect(tookMs).to.be.lessThan(15_000);
      expect(tookMs).to.be.greaterThan(5_000, 'not before the lease could have expired');
      const after = await api.readNamespacedLease({ name: lease, namespace: 'default' });
      expect(after.spec?.holderIdentity).to.equal(leader === a ? 'b' : 'a');
      expect(after.spec?.leaseTransitions).to.equal(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('after a graceful release the standby takes over within ~3 s', async () => {
    const lease = uniqueName('spo-kube-le');
    const { a, b } = pair(lease);
    a.start();
    await eventually('a leads', () => a.isLeader(), 10_000);
    b.start();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(b.isLeader()).to.equal(false);
    const released = Date.now();
    await a.stop();
    try {
      await eventually('takeover', () => b.isLeader(), 10_000, 20);
      expect(Date.now() - released).to.be.lessThan(3_000);
    } finally {
      await b.stop();
    }
  });
});
