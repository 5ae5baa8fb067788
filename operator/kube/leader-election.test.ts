import { expect } from 'chai';
import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock, flushMicrotasks } from './clock.ts';
import {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  LeaderElector,
  TAKEOVER_BOUND_MS,
  type LeaseApi,
} from './leader-election.ts';

/** An in-memory Lease store with the apiserver's optimistic concurrency (resourceVersion). */
class FakeLeaseApi implements LeaseApi {
  lease: V1Lease | undefined;
  private rv = 1;
  failing = false;
  writes = 0;
  private clone(lease: V1Lease): V1Lease {
    return JSON.parse(JSON.stringify(lease)) as V1Lease;
  }
  private check(): void {
    if (this.failing) throw new ApiException(503, 'unavailable', {}, {});
  }
  async readNamespacedLease(): Promise<V1Lease> {
    this.check();
    if (!this.lease) throw new ApiException(404, 'not found', {}, {});
    return this.clone(this.lease);
  }
  async createNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (this.lease) throw new ApiException(409, 'exists', {}, {});
    this.lease = this.clone({ ...param.body, metadata: { ...param.body.metadata, resourceVersion: String(++this.rv) } });
    this.writes++;
    return this.clone(this.lease);
  }
  async replaceNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (!this.lease) throw new ApiException(404, 'not found', {}, {});
    if (param.body.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) throw new ApiException(409, 'conflict', {}, {});
    this.lease = this.clone({ ...param.body, metadata: { ...param.body.metadata, resourceVersion: String(++this.rv) } });
    this.writes++;
    return this.clone(this.lease);
  }
}

function elector(api: LeaseApi, clock: FakeClock, identity: string, events: string[], registry = new Registry()): LeaderElector {
  return new LeaderElector({
    api,
    namespace: 'ns',
    name: 'spo',
    identity,
    clock,
    registry,
    random: () => 0.5,
    onStartedLeading: () => events.push(`${identity}:start`),
    onStoppedLeading: () => {
      events.push(`${identity}:stop`);
    },
  });
}

async function advanceUntil(clock: FakeClock, predicate: () => boolean, limitMs: number, stepMs = 100): Promise<number> {
  const start = clock.now();
  while (!predicate()) {
    if (clock.now() - start > limitMs) throw new Error(`condition not met within ${limitMs} ms`);
    await clock.advance(stepMs);
  }
  return clock.now() - start;
}

describe('kube/leader-election', () => {
  it('the default timings bound a takeover after the leader dies (lease + retry + a 1 s request) below 15 s', () => {
    expect(DEFAULT_LEASE_DURATION_MS + DEFAULT_RETRY_PERIOD_MS + 1_000).to.be.below(TAKEOVER_BOUND_MS);
    expect(TAKEOVER_BOUND_MS).to.equal(15_000);
    expect(DEFAULT_LEASE_DURATION_MS).to.be.above(DEFAULT_RENEW_DEADLINE_MS);
    expect(DEFAULT_RENEW_DEADLINE_MS).to.be.above(DEFAULT_RETRY_PERIOD_MS);
  });

  it('creates the Lease, leads, renews every retry period and reports the gauge', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const registry = new Registry();
    const a = elector(api, clock, 'a', events, registry);
    a.start();
    await flushMicrotasks();
    expect(a.isLeader()).to.equal(true);
    expect(events).to.deep.equal(['a:start']);
    expect(api.lease?.spec?.holderIdentity).to.equal('a');
    expect(api.lease?.spec?.leaseDurationSeconds).to.equal(DEFAULT_LEASE_DURATION_MS / 1000);
    expect(JSON.stringify(api.lease?.spec?.renewTime)).to.match(/\.\d{6}Z"$/, 'MicroTime has microseconds');
    const writes = api.writes;
    await clock.advance(10_000);
    expect(api.writes - writes).to.equal(5);
    expect(await registry.metrics()).to.include('spo_operator_leader{lease="spo"} 1');
    await a.stop();
    expect(await registry.metrics()).to.include('spo_operator_leader{lease="spo"} 0');
  });

  it('lets exactly one of two candidates lead', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    const b = elector(api, clock, 'b', events);
    a.start();
    b.start();
    await clock.advance(30_000);
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).to.have.length(1);
    expect(events).to.have.length(1);
    expect(b.currentLeader()).to.equal(api.lease?.spec?.holderIdentity);
    await a.stop({ release: false });
    await b.stop({ release: false });
  });

  it('two candidates racing for a free Lease: the replace with the read resourceVersion lets one win', async () => {
    const api = new FakeLeaseApi();
    api.lease = { metadata: { name: 'spo', namespace: 'ns', resourceVersion: '7' }, spec: { holderIdentity: '' } };
    const read = await api.readNamespacedLease();
    const first = api.replaceNamespacedLease({ body: { ...read, spec: { holderIdentity: 'a' } } });
    const second = api.replaceNamespacedLease({ body: { ...read, spec: { holderIdentity: 'b' } } });
    const results = await Promise.allSettled([first, second]);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected']);
    // and the elector itself treats the 409 as "not leading"
    const clock = new FakeClock();
    const events: string[] = [];
    const racing: LeaseApi = {
      readNamespacedLease: () => api.readNamespacedLease(),
      createNamespacedLease: (p) => api.createNamespacedLease(p),
      replaceNamespacedLease: () => Promise.reject(new ApiException(409, 'conflict', {}, {})),
    };
    api.lease.spec = { holderIdentity: '' };
    const c = elector(racing, clock, 'c', events);
    c.start();
    await clock.advance(5000);
    expect(c.isLeader()).to.equal(false);
    expect(events).to.deep.equal([]);
    await c.stop();
  });

  it('a standby takes over within 15 s when the leader dies without releasing', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    const b = elector(api, clock, 'b', events);
    a.start();
    await flushMicrotasks();
    b.start();
    await clock.advance(7_300); // the standby has observed several renewals
    expect(b.isLeader()).to.equal(false);
    await a.stop({ release: false });
    const took = await advanceUntil(clock, () => b.isLeader(), 20_000);
    expect(took).to.be.lessThan(15_000);
    expect(took).to.be.greaterThan(9_000, 'not before the lease expired');
    expect(api.lease?.spec?.holderIdentity).to.equal('b');
    expect(api.lease?.spec?.leaseTransitions).to.equal(1);
    await b.stop();
  });

  it('a graceful stop releases the Lease and a standby takes over within a retry period', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    const b = elector(api, clock, 'b', events);
    a.start();
    await flushMicrotasks();
    b.start();
    await clock.advance(5_000);
    await a.stop();
    expect(events).to.deep.equal(['a:start', 'a:stop']);
    expect(api.lease?.spec?.holderIdentity).to.equal('');
    const took = await advanceUntil(clock, () => b.isLeader(), 5_000);
    expect(took).to.be.at.most(2_500);
    await b.stop();
  });

  it('the leader steps down when it cannot renew for the renew deadline, before the lease expires', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    a.start();
    await flushMicrotasks();
    api.failing = true;
    const renewedAt = clock.now();
    const took = await advanceUntil(clock, () => !a.isLeader(), 20_000);
    expect(events).to.deep.equal(['a:start', 'a:stop']);
    expect(took).to.be.at.most(DEFAULT_RENEW_DEADLINE_MS + 100);
    expect(took).to.be.at.least(DEFAULT_RENEW_DEADLINE_MS - DEFAULT_RETRY_PERIOD_MS);
    expect(clock.now() - renewedAt).to.be.lessThan(DEFAULT_LEASE_DURATION_MS, 'stepped down before the lease expired');
    api.failing = false;
    await advanceUntil(clock, () => a.isLeader(), 5_000);
    expect(events).to.deep.equal(['a:start', 'a:stop', 'a:start'], 'the Lease was still ours: leads again');
    await a.stop();
  });

  it('steps down at once when a read shows another holder', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    a.start();
    await flushMicrotasks();
    // someone else forcibly took the Lease: our cached resourceVersion is now stale
    const current = await api.readNamespacedLease();
    await api.replaceNamespacedLease({ body: { ...current, spec: { ...current.spec, holderIdentity: 'x' } } });
    await clock.advance(4_100);
    expect(a.isLeader()).to.equal(false);
    expect(events).to.deep.equal(['a:start', 'a:stop']);
    await a.stop();
  });

  it('takes a Lease whose holder stopped renewing long ago at once', async () => {
    const clock = new FakeClock();
    const api = new FakeLeaseApi();
    api.lease = {
      metadata: { name: 'spo', namespace: 'ns', resourceVersion: '3' },
      spec: { holderIdentity: 'dead', leaseDurationSeconds: 12, renewTime: new Date(clock.now() - 60_000) },
    };
    const events: string[] = [];
    const a = elector(api, clock, 'a', events);
    a.start();
    await flushMicrotasks();
    expect(a.isLeader()).to.equal(true);
    await a.stop();
  });

  it('refuses inconsistent timings', () => {
    expect(
      () =>
        new LeaderElector({
          api: new FakeLeaseApi(),
          namespace: 'ns',
          name: 'x',
          identity: 'i',
          leaseDurationMs: 5000,
          renewDeadlineMs: 6000,
          onStartedLeading: () => undefined,
          registry: new Registry(),
        }),
    ).to.throw(/leaseDuration > renewDeadline > retryPeriod/);
  });
});
