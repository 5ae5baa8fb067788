import { expect } from 'chai';
import { ApiException } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock, flushMicrotasks } from './clock.ts';
import { runWorkers, type ReconcileOutcome } from './controller.ts';
import { WorkQueue } from './workqueue.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function setup(concurrency = 2) {
  const clock = new FakeClock();
  const registry = new Registry();
  const queue = new WorkQueue({ name: 'ctl', clock, registry, random: () => 0.5, backoff: { baseMs: 100, maxMs: 1000, jitter: 0.2 } });
  const outcomes: Array<[string, ReconcileOutcome]> = [];
  return { clock, registry, queue, outcomes, concurrency };
}

describe('kube/controller runWorkers', () => {
  it('runs different keys in parallel up to the concurrency, one key never twice at once', async () => {
    const { queue, registry } = setup();
    const running = new Set<string>();
    let maxParallel = 0;
    const runs: string[] = [];
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const workers = runWorkers(
      queue,
      async (key) => {
        expect(running.has(key), `${key} ran twice at once`).to.equal(false);
        running.add(key);
        maxParallel = Math.max(maxParallel, running.size);
        runs.push(key);
        const gate = deferred();
        gates.set(key, gate);
        await gate.promise;
        running.delete(key);
      },
      { concurrency: 2, registry },
    );
    queue.add('a');
    queue.add('b');
    queue.add('c');
    await flushMicrotasks();
    expect(runs).to.deep.equal(['a', 'b']);
    queue.add('a'); // re-added while in flight
    queue.add('a');
    gates.get('a')?.resolve();
    await flushMicrotasks();
    expect(runs).to.deep.equal(['a', 'b', 'c']);
    gates.get('b')?.resolve();
    await flushMicrotasks();
    expect(runs).to.deep.equal(['a', 'b', 'c', 'a'], 'a runs once more after its re-add');
    gates.get('c')?.resolve();
    gates.get('a')?.resolve();
    await flushMicrotasks();
    expect(maxParallel).to.equal(2);
    await workers.stop();
  });

  it('backs off on errors, forgets after a success, and honours requeueAfterMs', async () => {
    const { queue, clock, registry, outcomes } = setup();
    let calls = 0;
    const workers = runWorkers(
      queue,
      async () => {
        calls++;
        if (calls <= 2) throw new Error('store down');
        if (calls === 3) return { requeueAfterMs: 5000 };
        return undefined;
      },
      { registry, onOutcome: (key, outcome) => outcomes.push([key, outcome]) },
    );
    queue.add('k');
    await flushMicrotasks();
    expect(calls).to.equal(1);
    await clock.advance(99);
    expect(calls).to.equal(1);
    await clock.advance(1);
    expect(calls).to.equal(2, 'first retry after 100 ms');
    await clock.advance(199);
    expect(calls).to.equal(2);
    await clock.advance(1);
    expect(calls).to.equal(3, 'second retry after 200 ms');
    expect(queue.numRequeues('k')).to.equal(0, 'success forgets the backoff');
    await clock.advance(4999);
    expect(calls).to.equal(3);
    await clock.advance(1);
    expect(calls).to.equal(4);
    expect(outcomes.map(([, o]) => o)).to.deep.equal(['error', 'error', 'requeue', 'success']);
    const text = await registry.metrics();
    expect(text).to.include('spo_operator_reconcile_total{controller="ctl",result="error"} 2');
    await workers.stop();
  });

  it('requeues a 409 Conflict at once without counting an error or backing off', async () => {
    const { queue, registry, outcomes } = setup();
    let calls = 0;
    const workers = runWorkers(
      queue,
      async () => {
        calls++;
        if (calls === 1) throw new ApiException(409, 'Conflict', {}, {});
      },
      { registry, onOutcome: (key, outcome) => outcomes.push([key, outcome]) },
    );
    queue.add('k');
    await flushMicrotasks();
    expect(calls).to.equal(2);
    expect(outcomes.map(([, o]) => o)).to.deep.equal(['conflict', 'success']);
    expect(queue.numRequeues('k')).to.equal(0);
    const text = await registry.metrics();
    expect(text).not.to.include('result="error"');
    await workers.stop();
  });

  it('stop() waits for the reconcile in flight', async () => {
    const { queue, registry } = setup();
    const gate = deferred();
    let finished = false;
    const workers = runWorkers(
      queue,
      async () => {
        await gate.promise;
        finished = true;
      },
      { registry },
    );
    queue.add('k');
    await flushMicrotasks();
    let stopped = false;
    const stopping = workers.stop().then(() => (stopped = true));
    await flushMicrotasks();
    expect(stopped).to.equal(false);
    gate.resolve();
    await stopping;
    expect(finished).to.equal(true);
  });
});
