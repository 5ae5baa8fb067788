import { expect } from 'chai';
import { Registry } from 'prom-client';
import { FakeClock, backoffDelay, flushMicrotasks } from './clock.ts';
import { WorkQueue } from './workqueue.ts';

function newQueue(clock = new FakeClock(), registry = new Registry()): WorkQueue {
  return new WorkQueue({ name: 'test', clock, registry, random: () => 0.5, backoff: { baseMs: 100, maxMs: 1000, jitter: 0.2 } });
}

describe('kube/workqueue', () => {
  it('never holds a key twice', async () => {
    const q = newQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.depth()).to.equal(2);
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
    expect(q.depth()).to.equal(0);
    expect(q.inFlight()).to.equal(2);
  });

  it('does not hand out a key in flight; a re-add runs once after done()', async () => {
    const q = newQueue();
    q.add('a');
    const key = await q.get();
    expect(key).to.equal('a');
    q.add('a');
    q.add('a');
    expect(q.depth()).to.equal(0, 'the key is in flight, so it waits');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await flushMicrotasks();
    expect(second).to.equal(undefined);
    q.done('a');
    await flushMicrotasks();
    expect(second).to.equal('a');
    expect(q.depth()).to.equal(0, 'only once');
    q.done('a');
    expect(q.inFlight()).to.equal(0);
  });

  it('addAfter delays a key and keeps the earliest deadline', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.addAfter('a', 1000);
    q.addAfter('a', 300);
    q.addAfter('a', 2000);
    expect(q.delayedCount()).to.equal(1);
    await clock.advance(299);
    expect(q.depth()).to.equal(0);
    await clock.advance(1);
    expect(q.depth()).to.equal(1);
    expect(q.delayedCount()).to.equal(0);
    await clock.advance(5000);
    expect(q.depth()).to.equal(1, 'the later deadlines were dropped');
  });

  it('backs off per key exponentially, capped, and forget() resets', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    // random 0.5 means no jitter: 100, 200, 400, 800, 1000 (cap)
    expect([1, 2, 3, 4, 5].map(() => q.addRateLimited('a'))).to.deep.equal([100, 200, 400, 800, 1000]);
    expect(q.numRequeues('a')).to.equal(5);
    expect(q.addRateLimited('b')).to.equal(100, 'other keys have their own backoff');
    q.forget('a');
    expect(q.numRequeues('a')).to.equal(0);
    expect(q.addRateLimited('a')).to.equal(100);
  });

  it('jitters the backoff within ± jitter', () => {
    const options = { baseMs: 1000, maxMs: 60_000, jitter: 0.2 };
    expect(backoffDelay(1, options, () => 0)).to.equal(800);
    expect(backoffDelay(1, options, () => 1)).to.equal(1200);
    expect(backoffDelay(3, options, () => 0.5)).to.equal(4000);
    expect(backoffDelay(30, options, () => 1)).to.equal(60_000, 'never above the cap');
  });

  it("draws a 'full' jitter backoff uniformly below the capped exponential (the store's and the worker client's retries)", () => {
    const options = { baseMs: 20, maxMs: 1000, jitter: 'full' as const };
    expect(backoffDelay(1, options, () => 0.999)).to.equal(19);
    expect(backoffDelay(3, options, () => 0.5)).to.equal(40);
    expect(backoffDelay(10, options, () => 0.999)).to.equal(999, 'never above the cap');
    expect(backoffDelay(3, options, () => 0)).to.equal(0);
  });

  it('shutdown wakes idle getters, drops queued keys and waits for the keys in flight', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.add('a');
    q.add('b');
    q.addAfter('c', 100);
    expect(await q.get()).to.equal('a');
    let finished = false;
    const shutdown = q.shutdown().then((ok) => {
      finished = ok;
    });
    await flushMicrotasks();
    expect(finished).to.equal(false, 'a is still in flight');
    expect(await q.get()).to.equal(undefined);
    q.add('d');
    expect(q.depth()).to.equal(0);
    expect(clock.pending()).to.equal(0, 'delayed adds are cancelled');
    q.done('a');
    await shutdown;
    expect(finished).to.equal(true);
  });

  it('shutdown gives up waiting after its timeout', async () => {
    const q = newQueue();
    q.add('a');
    await q.get();
    expect(await q.shutdown(20)).to.equal(false);
  });

  it('exports depth and in-flight gauges', async () => {
    const registry = new Registry();
    const q = newQueue(new FakeClock(), registry);
    q.add('a');
    q.add('b');
    await q.get();
    const text = await registry.metrics();
    expect(text).to.include('spo_operator_workqueue_depth{queue="test"} 1');
    expect(text).to.include('spo_operator_workqueue_in_flight{queue="test"} 1');
    expect(text).to.include('spo_operator_workqueue_adds_total{queue="test"} 2');
  });
});

describe('kube/workqueue addFirst', () => {
  it('puts a key ahead of the queued ones, moving it if already queued, once', async () => {
    const q = newQueue();
    q.add('a');
    q.add('b');
    q.add('c');
    q.addFirst('c');
    q.addFirst('d');
    expect(q.depth()).to.equal(4);
    expect([await q.get(), await q.get(), await q.get(), await q.get()]).to.deep.equal(['d', 'c', 'a', 'b']);
  });

  it('a key in flight re-added by addFirst runs first after done()', async () => {
    const q = newQueue();
    q.add('a');
    expect(await q.get()).to.equal('a');
    q.add('b');
    q.addFirst('a');
    expect(q.depth()).to.equal(1);
    q.done('a');
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
  });
});
