import { expect } from 'chai';
import { CoreV1Api, EventsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { EventRecorder } from './events.ts';
import { createNamespace, deleteNamespace, testKubeConfig } from './test-support.ts';

describe('kube/events (apiserver)', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let namespace: string;

  before(async () => {
    kc = testKubeConfig();
    namespace = await createNamespace(kc, 'spo-kube-events');
  });
  after(async () => deleteNamespace(kc, namespace));

  it('aggregates 5 identical records into one Event with series.count 5', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const events = kc.makeApiClient(EventsV1Api);
    const cm = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'target', namespace } } });
    const recorder = new EventRecorder({ api: events, reportingInstance: 'test-0', flushDelayMs: 100 });
    const involved = { apiVersion: 'v1', kind: 'ConfigMap', metadata: cm.metadata };
    for (let i = 0; i < 5; i++) recorder.record(involved, 'Warning', 'StoreUnreachable', `attempt ${i + 1}`);
    recorder.record(involved, 'Normal', 'Scaled', 'replicas 1 -> 2');
    await recorder.flush();
    const list = await events.listNamespacedEvent({ namespace, fieldSelector: 'regarding.name=target' });
    const warnings = list.items.filter((e) => e.reason === 'StoreUnreachable');
    expect(warnings).to.have.length(1);
    expect(warnings[0]?.series?.count).to.equal(5);
    expect(warnings[0]?.note).to.equal('attempt 1', 'the note of an event is immutable');
    expect(warnings[0]?.reportingController).to.equal('session-pool-operator');
    expect(warnings[0]?.regarding?.uid).to.equal(cm.metadata?.uid);
    expect(list.items.filter((e) => e.reason === 'Scaled')).to.have.length(1);
  });

  it('keeps aggregating through several flushes with changing notes, every write accepted (series only, never the note)', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const events = kc.makeApiClient(EventsV1Api);
    const cm = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'target-2', namespace } } });
    const warnings: unknown[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const recorder = new EventRecorder({ api: events, reportingInstance: 'test-0', flushDelayMs: 50, logger });
    const involved = { apiVersion: 'v1', kind: 'ConfigMap', metadata: cm.metadata };
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) recorder.record(involved, 'Warning', 'ApplyFailed', `round ${round} try ${i}: ${'x'.repeat(round * 10)}`);
      await recorder.flush();
    }
    expect(warnings, 'no write refused (422 immutable note)').to.deep.equal([]);
    const list = await events.listNamespacedEvent({ namespace, fieldSelector: 'regarding.name=target-2' });
    expect(list.items).to.have.length(1);
    expect(list.items[0]?.series?.count).to.equal(9);
    expect(list.items[0]?.series?.lastObservedTime).to.not.equal(undefined);
    expect(list.items[0]?.note).to.equal('round 0 try 0: ');
  });
});
