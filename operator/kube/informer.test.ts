import { expect } from 'chai';
import type { KubernetesListObject, V1ConfigMap } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { FakeClock, flushMicrotasks } from './clock.ts';
import { Informer, defaultDeserialize, enqueueKeys, objectKey, parseKey, type InformerEvent, type WatchLike } from './informer.ts';

interface WatchCall {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  send: (phase: string, obj: unknown) => void;
  end: (err: unknown) => void;
  controller: AbortController;
}

class FakeWatch implements WatchLike {
  readonly calls: WatchCall[] = [];
  async watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, obj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    this.calls.push({ path, params, send: callback, end: done, controller });
    return controller;
  }
  last(): WatchCall {
    const call = this.calls.at(-1);
    if (!call) throw new Error('no watch yet');
    return call;
  }
}

function cm(name: string, rv: string, namespace = 'ns'): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, resourceVersion: rv } };
}

function setup(options: { watchdogMs?: number; resyncMs?: number; listTimeoutMs?: number } = {}) {
  const clock = new FakeClock();
  const watch = new FakeWatch();
  const registry = new Registry();
  const lists: Array<KubernetesListObject<V1ConfigMap> | Error | 'hang'> = [];
  let listCalls = 0;
  const informer = new Informer<V1ConfigMap>({
    resource: 'configmaps',
    path: '/api/v1/namespaces/ns/configmaps',
    labelSelector: 'app=x',
    list: async (opts) => {
      listCalls++;
      expect(opts.labelSelector).to.equal('app=x');
      const next = lists.shift();
      if (next === undefined) throw new Error('no list prepared');
      if (next === 'hang') return new Promise<never>(() => undefined);
      if (next instanceof Error) throw next;
      return next;
    },
    watch,
    clock,
    registry,
    random: () => 0.5,
    watchdogMs: options.watchdogMs ?? 60_000,
    resyncMs: options.resyncMs ?? 0,
    listTimeoutMs: options.listTimeoutMs ?? 30_000,
    deserialize: (raw) => raw as V1ConfigMap,
  });
  const events: Array<[InformerEvent, string]> = [];
  informer.on((event, obj) => events.push([event, objectKey(obj)]));
  return { clock, watch, registry, lists, informer, events, listCalls: () => listCalls };
}

function listOf(rv: string, ...items: V1ConfigMap[]): KubernetesListObject<V1ConfigMap> {
  return { metadata: { resourceVersion: rv }, items };
}

describe('kube/informer', () => {
  it('lists, fills the cache, emits adds, then watches from the list resourceVersion', async () => {
    const { informer, lists, watch, events } = setup();
    lists.push(listOf('10', cm('a', '5'), cm('b', '6')));
    expect(informer.hasSynced()).to.equal(false);
    informer.start();
    await informer.waitForSync(1000);
    await flushMicrotasks();
    expect(informer.hasSynced()).to.equal(true);
    expect(events).to.deep.equal([
      ['add', 'ns/a'],
      ['add', 'ns/b'],
    ]);
    expect(informer.get('a', 'ns')?.metadata?.resourceVersion).to.equal('5');
    expect(informer.list('ns')).to.have.length(2);
    expect(informer.list('other')).to.have.length(0);
    expect(watch.calls).to.have.length(1);
    expect(watch.last().path).to.equal('/api/v1/namespaces/ns/configmaps');
    expect(watch.last().params).to.include({ resourceVersion: '10', allowWatchBookmarks: true, labelSelector: 'app=x' });
    await informer.stop();
  });

  it('applies watch events, skips same-version updates and accepts deletes of unknown objects', async () => {
    const { informer, lists, watch, events, registry } = setup();
    lists.push(listOf('10', cm('a', '5')));
    informer.start();
    await flushMicrotasks();
    events.length = 0;
    const w = watch.last();
    w.send('ADDED', cm('b', '11'));
    w.send('MODIFIED', cm('a', '12'));
    w.send('MODIFIED', cm('a', '12'));
    w.send('DELETED', cm('b', '13'));
    w.send('DELETED', cm('ghost', '14'));
    w.send('BOOKMARK', { metadata: { resourceVersion: '20' } });
    expect(events).to.deep.equal([
      ['add', 'ns/b'],
      ['update', 'ns/a'],
      ['delete', 'ns/b'],
      ['delete', 'ns/ghost'],
    ]);
    expect(informer.keys()).to.deep.equal(['ns/a']);
    expect(informer.latestResourceVersion()).to.equal('20');
    const text = await registry.metrics();
    expect(text).to.include('spo_operator_watch_events_total{resource="configmaps",type="modified"} 2');
    expect(text).to.include('spo_operator_watch_events_total{resource="configmaps",type="bookmark"} 1');
    await informer.stop();
  });

  it('rewatches from the last resourceVersion after a clean close or a client timeout, without relisting', async () => {
    const { informer, lists, watch, listCalls, clock } = setup();
    lists.push(listOf('10'));
    informer.start();
    await flushMicrotasks();
    watch.last().send('ADDED', cm('a', '15'));
    watch.last().end(null);
    await flushMicrotasks();
    expect(watch.calls).to.have.length(2);
    expect(watch.last().params.resourceVersion).to.equal('15');
    await clock.advance(30_000); // the client's inactivity timeout
    watch.last().end(Object.assign(new Error('timeout'), { name: 'TimeoutError' }));
    await flushMicrotasks();
    expect(watch.calls).to.have.length(3);
    expect(listCalls()).to.equal(1);
    expect(informer.restartCount()).to.equal(0);
    await informer.stop();
  });

  it('backs off when a watch keeps closing at once without events', async () => {
    const { informer, lists, watch, clock, listCalls } = setup();
    lists.push(listOf('10'));
    informer.start();
    await flushMicrotasks();
    watch.last().end(null);
    await flushMicrotasks();
    expect(watch.calls).to.have.length(1, 'no immediate rewatch');
    await clock.advance(1000);
    expect(watch.calls).to.have.length(2);
    watch.last().end(null);
    await clock.advance(1999);
    expect(watch.calls).to.have.length(2);
    await clock.advance(1);
    expect(watch.calls).to.have.length(3);
    expect(listCalls()).to.equal(1, 'the resourceVersion is still good: no relist');
    await informer.stop();
  });

  it('relists at once after 410 Gone, emitting deletes for objects that vanished meanwhile', async () => {
    const { informer, lists, watch, events, listCalls } = setup();
    lists.push(listOf('10', cm('a', '5'), cm('b', '6')));
    informer.start();
    await flushMicrotasks();
    events.length = 0;
    lists.push(listOf('30', cm('a', '25')));
    watch.last().send('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    watch.last().end(null);
    await flushMicrotasks();
    expect(listCalls()).to.equal(2);
    expect(events).to.deep.equal([
      ['delete', 'ns/b'],
      ['update', 'ns/a'],
    ]);
    expect(watch.last().params.resourceVersion).to.equal('30');
    expect(informer.restartCount()).to.equal(1);
    await informer.stop();
  });

  it('restarts after any other error with exponential backoff, and resets it once the watch works', async () => {
    const { informer, lists, watch, clock, listCalls, registry } = setup();
    lists.push(listOf('10'));
    informer.start();
    await flushMicrotasks();
    watch.last().end(Object.assign(new Error('boom'), { statusCode: 500 }));
    lists.push(new Error('apiserver down'), listOf('11'));
    await clock.advance(999);
    expect(listCalls()).to.equal(1);
    await clock.advance(1);
    expect(listCalls()).to.equal(2, 'relist 1 s after the first error');
    await clock.advance(1999);
    expect(listCalls()).to.equal(2);
    await clock.advance(1);
    expect(listCalls()).to.equal(3, 'then 2 s after the second');
    expect(watch.calls).to.have.length(2);
    watch.last().send('ADDED', cm('a', '12'));
    watch.last().end(new Error('reset'));
    lists.push(listOf('13', cm('a', '12')));
    await clock.advance(1000);
    expect(listCalls()).to.equal(4, 'an event reset the backoff to 1 s');
    expect(informer.restartCount()).to.equal(3);
    expect(await registry.metrics()).to.include('spo_operator_watch_restarts_total{resource="configmaps"} 3');
    await informer.stop();
  });

  it('a watchdog rebuilds a silent watch and interrupts a hung list', async () => {
    const { informer, lists, watch, clock, listCalls } = setup({ watchdogMs: 8000, listTimeoutMs: 600_000 });
    lists.push(listOf('10'));
    informer.start();
    await flushMicrotasks();
    lists.push('hang', listOf('20', cm('x', '19')));
    await clock.advance(7000);
    expect(listCalls()).to.equal(1);
    await clock.advance(3000);
    expect(listCalls()).to.equal(2, 'silent watch rebuilt by a relist');
    expect(watch.calls[0]?.controller.signal.aborted).to.equal(true, 'the silent watch was aborted');
    await clock.advance(10_000);
    // the hung list is interrupted by the watchdog, then retried after the backoff
    await clock.advance(5000);
    expect(listCalls()).to.equal(3);
    expect(informer.get('x', 'ns')).to.not.equal(undefined);
    expect(informer.restartCount()).to.be.greaterThanOrEqual(2);
    await informer.stop();
  });

  it('a list that never answers times out', async () => {
    const { informer, lists, clock, listCalls } = setup({ watchdogMs: 600_000, listTimeoutMs: 5000 });
    lists.push('hang', listOf('10'));
    informer.start();
    await clock.advance(4999);
    expect(informer.hasSynced()).to.equal(false);
    await clock.advance(1 + 1000);
    expect(listCalls()).to.equal(2);
    expect(informer.hasSynced()).to.equal(true);
    await informer.stop();
  });

  it('resync re-emits every cached object periodically', async () => {
    const { informer, lists, clock, events } = setup({ resyncMs: 10_000 });
    lists.push(listOf('10', cm('a', '5'), cm('b', '6')));
    informer.start();
    await flushMicrotasks();
    events.length = 0;
    await clock.advance(10_000);
    expect(events).to.deep.equal([
      ['resync', 'ns/a'],
      ['resync', 'ns/b'],
    ]);
    await clock.advance(10_000);
    expect(events).to.have.length(4);
    await informer.stop();
  });

  it('stop() ends the loop and aborts the watch', async () => {
    const { informer, lists, watch, clock } = setup();
    lists.push(listOf('10'));
    informer.start();
    await flushMicrotasks();
    await informer.stop();
    expect(watch.last().controller.signal.aborted).to.equal(true);
    await clock.advance(120_000);
    expect(watch.calls).to.have.length(1);
  });

  it('waitForSync rejects after its timeout', async () => {
    const { informer } = setup();
    let message = '';
    await informer.waitForSync(10).catch((err: Error) => (message = err.message));
    expect(message).to.match(/not synced after 10 ms/);
  });

  it('enqueueKeys maps events to keys, and keys parse back', () => {
    const added: string[] = [];
    const handler = enqueueKeys<V1ConfigMap>({ add: (k) => added.push(k) });
    handler('add', cm('a', '1'));
    handler('delete', cm('n', '1', ''));
    const mapped = enqueueKeys<V1ConfigMap>({ add: (k) => added.push(k) }, (o) => [`pool/${o.metadata?.name}`, 'x']);
    mapped('update', cm('p', '1'));
    expect(added).to.deep.equal(['ns/a', 'n', 'pool/p', 'x']);
    expect(parseKey('ns/a')).to.deep.equal({ namespace: 'ns', name: 'a' });
    expect(parseKey('node1')).to.deep.equal({ name: 'node1' });
  });

  it('deserializes built-in kinds like the generated list calls and leaves custom resources alone', () => {
    const raw = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'a', creationTimestamp: '2026-01-01T00:00:00Z' },
      data: { k: 'v' },
    };
    const typed = defaultDeserialize<V1ConfigMap>(raw);
    expect(typed.metadata?.creationTimestamp).to.be.instanceOf(Date);
    expect(typed.data).to.deep.equal({ k: 'v' });
    const custom = { apiVersion: 'example.io/v1', kind: 'Thing', metadata: { creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { x: 1 } };
    expect(defaultDeserialize(custom)).to.equal(custom);
  });
});
