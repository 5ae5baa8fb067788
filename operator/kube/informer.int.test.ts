import { expect } from 'chai';
import { CoreV1Api, Watch, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { Informer, objectKey, type InformerEvent, type WatchLike } from './informer.ts';
import { createNamespace, deleteNamespace, eventually, testKubeConfig } from './test-support.ts';

/** The real Watch, with a switch that fails the live watch as a network error would. */
class BreakableWatch implements WatchLike {
  private readonly real: Watch;
  private current: ((err: unknown) => void) | undefined;
  failNext = 0;
  constructor(kc: KubeConfig) {
    this.real = new Watch(kc);
  }
  async watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, obj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.failNext > 0) {
      this.failNext--;
      done(Object.assign(new Error('injected: apiserver unavailable'), { statusCode: 503 }));
      return new AbortController();
    }
    this.current = done;
    return this.real.watch(path, params, callback, done);
  }
  /** Ends the live watch with an error (the informer then aborts the connection). */
  breakNow(): void {
    this.current?.(new Error('injected: connection reset'));
  }
}

describe('kube/informer (apiserver)', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let core: CoreV1Api;
  let namespace: string;

  before(async () => {
    kc = testKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    namespace = await createNamespace(kc, 'spo-kube-informer');
  });
  after(async () => deleteNamespace(kc, namespace));

  function configMap(name: string, value: string): V1ConfigMap {
    return { metadata: { name, namespace, labels: { 'spo-test': 'informer' } }, data: { value } };
  }

  it('sees add, update and delete; recovers after a forced watch error; resync re-enqueues', async () => {
    const registry = new Registry();
    const watch = new BreakableWatch(kc);
    await core.createNamespacedConfigMap({ namespace, body: configMap('before', '0') });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'unlabelled', namespace }, data: {} } });
    const informer = new Informer<V1ConfigMap>({
      resource: 'configmaps',
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      labelSelector: 'spo-test=informer',
      list: (opts) => core.listNamespacedConfigMap({ namespace, ...opts }),
      watch,
      registry,
      resyncMs: 1_500,
      backoff: { baseMs: 200, maxMs: 1_000 },
    });
    const events: Array<[InformerEvent, string]> = [];
    informer.on((event, obj) => events.push([event, objectKey(obj)]));
    informer.start();
    try {
      await informer.waitForSync(10_000);
      expect(informer.keys()).to.deep.equal([`${namespace}/before`], 'the label selector applies');
      expect(informer.get('before', namespace)?.metadata?.creationTimestamp).to.be.instanceOf(Date);

      await core.createNamespacedConfigMap({ namespace, body: configMap('a', '1') });
      await eventually('add of a', () => informer.get('a', namespace));
      await core.patchNamespacedConfigMap({ namespace, name: 'a', body: [{ op: 'replace', path: '/data/value', value: '2' }] });
      await eventually('update of a', () => informer.get('a', namespace)?.data?.value === '2');
      expect(informer.get('a', namespace)?.metadata?.creationTimestamp).to.be.instanceOf(Date, 'watch objects are typed like listed ones');
      await core.deleteNamespacedConfigMap({ namespace, name: 'a' });
      await eventually('delete of a', () => informer.get('a', namespace) === undefined);
      expect(events.filter(([, key]) => key === `${namespace}/a`).map(([e]) => e)).to.deep.equal(['add', 'update', 'delete']);

      // A forced error, then two failed reconnects: the informer backs off, relists, and
      // sees what changed while it was not watching (a delete and an add).
      watch.failNext = 2;
      watch.breakNow();
      await core.deleteNamespacedConfigMap({ namespace, name: 'before' });
      await core.createNamespacedConfigMap({ namespace, body: configMap('during', '1') });
      await eventually(
        'recovery',
        () => informer.get('during', namespace) !== undefined && informer.get('before', namespace) === undefined,
        15_000,
      );
      await eventually('the injected failures', () => watch.failNext === 0 && informer.restartCount() >= 3, 15_000);
      expect(events).to.deep.include(['delete', `${namespace}/before`]);
      const metrics = await registry.metrics();
      expect(metrics).to.match(/spo_operator_watch_restarts_total\{resource="configmaps"\} [3-9]/);
      expect(metrics).to.match(/spo_operator_watch_events_total\{resource="configmaps",type="added"\} \d/);

      // the watch works again after recovery
      await core.createNamespacedConfigMap({ namespace, body: configMap('after', '1') });
      await eventually('add after recovery', () => informer.get('after', namespace));

      // resync re-emits every cached object
      const before = events.length;
      await eventually('resync', () => events.slice(before).filter(([e]) => e === 'resync').length >= 2, 5_000);
      const resynced = new Set(
        events
          .slice(before)
          .filter(([e]) => e === 'resync')
          .map(([, k]) => k),
      );
      expect([...resynced].sort()).to.deep.equal([`${namespace}/after`, `${namespace}/during`]);
    } finally {
      await informer.stop();
    }
  });
});
