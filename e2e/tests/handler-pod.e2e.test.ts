// A SessionPool with spec.handler on the local cluster: the operator puts the handler container
// beside the worker, the local kubelet runs both as processes sharing the pod's ports, sessions
// run through the handler, and a handler that crashes is restarted while its pod turns unready
// and ready again; a deleted pod's handler stops only once its worker drained (the handler
// container's preStop hook). The handler is the raw Python one (standard library, no SDK).
import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { isRunning, waitFor } from '../harness/processes.ts';
import { httpGetSucceeds } from '../harness/pod-supervisor.ts';
import { createPool, poolPods } from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const podReady = (pod: V1Pod | undefined) => pod?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

describe('a pool with a handler container (spec.handler)', function () {
  this.timeout(180_000);
  const state = migrationSuite();

  it('runs sessions through the handler; a crashed handler is restarted, its pod unready meanwhile', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, {
      replicas: 1,
      prefix: 'handler',
      spec: { handler: { image: 'spo-raw-python-handler:e2e', timeoutSeconds: 5 } },
    }));
    const [pod] = await poolPods(env, pool);
    const podName = pod?.metadata?.name ?? '';
    expect(pod?.spec?.containers.map((c) => c.name)).to.deep.equal(['worker', 'handler']);
    const worker = [...env.kubelet.workers.values()].find((w) => w.pod === podName);
    expect(worker?.supervisor?.containers.map((c) => c.name)).to.deep.equal(['handler']);
    const base = `http://${worker?.endpoint}`;
    const readPod = async () => await env.core.readNamespacedPod({ name: podName, namespace: pool.namespace });
    await waitFor('the pod ready with its handler', async () => podReady(await readPod()) || undefined, 60_000, 250);

    const handlers = (await (await fetch(`${base}/v1/handlers`)).json()) as { handlers: { name: string }[] };
    expect(handlers.handlers.map((h) => h.name)).to.include.members(['echo', 'put']);
    const created = (await (
      await fetch(`${base}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":{}}' })
    ).json()) as { session: { id: string } };
    const id = created.session.id;
    const put = async (value: number) =>
      fetch(`${base}/v1/sessions/${id}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ handler: 'put', args: { key: 'n', value } }),
      });
    expect((await put(1)).status).to.equal(200);

    const killed = env.kubelet.killContainer(podName, 'handler');
    expect(killed).to.be.a('number');
    await waitFor('the pod unready while its handler is down', async () => (!podReady(await readPod()) ? true : undefined), 30_000, 100);
    await waitFor('the pod ready again with a restarted handler', async () => podReady(await readPod()) || undefined, 60_000, 250);
    const restarted = worker?.supervisor?.containers[0];
    expect(restarted?.restarts).to.equal(1);
    expect(restarted?.record.pid).to.not.equal(killed);
    await waitFor('the worker ready again', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined), 30_000, 100);
    // The first request after the restart may find the runtime's kept-alive connection to the dead
    // handler and answer 503 (retryable, nothing ran: `previous` below proves it); a retry goes through.
    let after = await put(2);
    for (let i = 0; i < 20 && after.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await put(2);
    }
    expect(after.status).to.equal(200);
    expect(((await after.json()) as { result: unknown }).result).to.deep.equal({ previous: 1 });
  });

  it('a deleted pod’s handler keeps serving until its worker drained (its preStop hook), then stops', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, {
      replicas: 1,
      prefix: 'handler-stop',
      spec: { handler: { image: 'spo-raw-python-handler:e2e', timeoutSeconds: 10 } },
    }));
    const [pod] = await poolPods(env, pool);
    const podName = pod?.metadata?.name ?? '';
    expect(pod?.spec?.containers[1]?.lifecycle?.preStop?.httpGet?.path).to.equal('/lifecycle/handler-stop');
    const worker = [...env.kubelet.workers.values()].find((w) => w.pod === podName);
    const handlerPort = worker?.ports.get(8081) ?? 0;
    const handler = worker?.supervisor?.containers[0];
    const base = `http://${worker?.endpoint}`;
    await waitFor(
      'the worker ready with its handler',
      async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined),
      60_000,
      250,
    );
    const created = (await (
      await fetch(`${base}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"data":{}}' })
    ).json()) as { session: { id: string } };
    const slow = fetch(`${base}/v1/sessions/${created.session.id}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'sleep', args: { ms: 2_500 } }),
    });
    await sleep(300);
    const deletedAt = Date.now();
    await env.core.deleteNamespacedPod({ name: podName, namespace: pool.namespace });
    // The worker drains (the slow request runs on), and whatever it still sends its handler meanwhile
    // must find it serving: a handler told to stop with the worker stops taking requests (the raw
    // one stops its server loop at once) and exits as soon as it has none, before the worker stops sending.
    await sleep(700);
    expect(await httpGetSucceeds(handlerPort, '/contract/v1/ready', 1_000), 'the handler serves during the drain').to.equal(true);
    expect(handler && isRunning(handler.record)).to.equal(true);
    expect((await slow).status).to.equal(200);
    await waitFor(
      'the handler exited after the drain',
      async () => (handler && !isRunning(handler.record) ? true : undefined),
      30_000,
      100,
    );
    expect(Date.now() - deletedAt, 'the handler outlived the slow request').to.be.greaterThan(2_000);
  });
});
