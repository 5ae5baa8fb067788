import { expect } from 'chai';
import { ApiException, type EventsV1Event } from '@kubernetes/client-node';
import { FakeClock, flushMicrotasks } from './clock.ts';
import { EventRecorder } from './events.ts';

class FakeEventsApi {
  created: EventsV1Event[] = [];
  patches: Array<{ name: string; body: { note?: string; series: { count: number; lastObservedTime: Date } } }> = [];
  failCreate = false;
  async createNamespacedEvent(param: { namespace: string; body: EventsV1Event }): Promise<EventsV1Event> {
    if (this.failCreate) throw new ApiException(403, 'forbidden', {}, {});
    this.created.push(param.body);
    return param.body;
  }
  async patchNamespacedEvent(param: { name: string; body: unknown }): Promise<EventsV1Event> {
    this.patches.push(param as (typeof this.patches)[number]);
    return {} as EventsV1Event;
  }
}

const pool = { apiVersion: 'dspex.io/v1alpha1', kind: 'SessionPool', metadata: { name: 'p', namespace: 'ns', uid: 'u1' } };

function setup() {
  const clock = new FakeClock();
  const api = new FakeEventsApi();
  const recorder = new EventRecorder({
    api,
    reportingInstance: 'op-0',
    clock,
    flushDelayMs: 1000,
    aggregateWindowMs: 60_000,
  });
  return { clock, api, recorder };
}

describe('kube/events', () => {
  it('creates a well-formed events.k8s.io/v1 Event', async () => {
    const { api, recorder } = setup();
    recorder.record(pool, 'Normal', 'ScaledUp', 'replicas 2 -> 3');
    await recorder.flush();
    expect(api.created).to.have.length(1);
    const event = api.created[0];
    expect(event?.metadata?.namespace).to.equal('ns');
    expect(event?.metadata?.name).to.match(/^p\.[0-9a-f]+$/);
    expect(event).to.deep.include({
      reason: 'ScaledUp',
      action: 'ScaledUp',
      type: 'Normal',
      note: 'replicas 2 -> 3',
      reportingController: 'session-pool-operator',
      reportingInstance: 'op-0',
    });
    expect(event?.regarding).to.deep.include({ kind: 'SessionPool', name: 'p', uid: 'u1' });
    expect(JSON.stringify(event?.eventTime)).to.match(/\.\d{6}Z"$/);
  });

  it('aggregates identical records into one event and coalesces count updates', async () => {
    const { api, recorder, clock } = setup();
    for (let i = 0; i < 5; i++) recorder.record(pool, 'Warning', 'StoreUnreachable', `attempt ${i}`);
    await flushMicrotasks();
    expect(api.created).to.have.length(1);
    expect(api.patches).to.have.length(0, 'repeats wait for the flush delay');
    await clock.advance(1000);
    expect(api.patches).to.have.length(1);
    expect(api.patches[0]?.body.series.count).to.equal(5);
    expect(Object.keys(api.patches[0]?.body ?? {})).to.deep.equal(['series'], 'note is immutable');
    recorder.record(pool, 'Warning', 'StoreUnreachable', 'again');
    await recorder.flush();
    expect(api.patches.at(-1)?.body.series.count).to.equal(6);
    expect(api.created).to.have.length(1);
  });

  it('keeps different reasons, types and objects apart, and starts over after the window', async () => {
    const { api, recorder, clock } = setup();
    recorder.record(pool, 'Warning', 'A', 'x');
    recorder.record(pool, 'Warning', 'B', 'x');
    recorder.record(pool, 'Normal', 'A', 'x');
    recorder.record({ ...pool, metadata: { ...pool.metadata, name: 'q', uid: 'u2' } }, 'Warning', 'A', 'x');
    await recorder.flush();
    expect(api.created).to.have.length(4);
    expect(new Set(api.created.map((e) => e.metadata?.name)).size).to.equal(4, 'unique names');
    await clock.advance(61_000);
    recorder.record(pool, 'Warning', 'A', 'x');
    await recorder.flush();
    expect(api.created).to.have.length(5);
  });

  it('puts events about cluster-scoped objects in default, and survives write failures', async () => {
    const { api, recorder } = setup();
    recorder.record({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', uid: 'n' } }, 'Normal', 'Cordoned', 'evacuating');
    await recorder.flush();
    expect(api.created[0]?.metadata?.namespace).to.equal('default');
    api.failCreate = true;
    recorder.record(pool, 'Warning', 'Lost', 'x');
    recorder.record(pool, 'Warning', 'Lost', 'y');
    await recorder.flush();
    expect(api.patches).to.have.length(0, 'no count update for an event that was never created');
  });
});
