import { expect } from 'chai';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import type { WorkerRegistration } from '../../store/types.ts';
import { ModeSwitches, describeAnswer, modeSwitchTargets, type AdminCall } from './worker-admin.ts';

function pool(mode: SessionPool['spec']['sessionMode'] = 'Dual'): SessionPool {
  const p = newSessionPool('web', 'ns1', { replicas: 2, worker: { image: 'img:1' }, store: { endpoints: ['r:1'] }, sessionMode: mode });
  p.metadata.uid = 'uid-1';
  return p;
}

const reg = (worker: string, draining = false): WorkerRegistration => ({
  pool: 'web',
  worker,
  endpoint: `10.0.0.${worker.length}:8080`,
  draining,
  heartbeatAt: 0,
});

describe('pool/worker-admin', () => {
  it('targets live, registered, not-draining workers not yet confirmed', () => {
    const targets = modeSwitchTargets(
      [reg('w-b'), reg('w-a'), reg('gone'), reg('w-d', true), reg('w-c')],
      new Set(['w-a', 'w-b', 'w-c', 'w-d']),
      new Set(['w-c']),
    );
    expect(targets.map((t) => t.worker)).to.deep.equal(['w-a', 'w-b']);
  });

  it('describes answers without more than code and message', () => {
    expect(describeAnswer({ status: 200, body: { report: { from: 'Centralized', steps: ['Dual'] } } })).to.equal('Centralized -> Dual');
    expect(describeAnswer({ status: 200, body: { report: { from: 'Dual', steps: [] } } })).to.equal('already in this mode');
    expect(describeAnswer({ status: 403, body: { error: { code: 'FORBIDDEN', message: 'the admin token is wrong' } } })).to.equal(
      'HTTP 403 FORBIDDEN: the admin token is wrong',
    );
    expect(describeAnswer({ status: 502, body: '<html>' })).to.equal('HTTP 502 no error code');
  });

  it('sends the token and the mode once per worker and mode; retries the ones that failed', async () => {
    const sent: Array<[string, string, string]> = [];
    let refuse = new Set(['10.0.0.3:8080']);
    const call: AdminCall = async (endpoint, token, mode) => {
      sent.push([endpoint, token, mode]);
      if (refuse.has(endpoint)) return { status: 403, body: { error: { code: 'FORBIDDEN' } } };
      return { status: 200, body: { report: { from: 'Centralized', steps: [mode] } } };
    };
    const modes = new ModeSwitches(call);
    const live = new Set(['w-a', 'w-bb', 'w-ccc']);
    const registrations = [reg('w-a'), reg('w-bb'), reg('w-ccc')];
    const first = await modes.sync('ns1/web', pool('Dual'), 'tok', registrations, live);
    expect(first.map((o) => [o.worker, o.ok, o.switched])).to.deep.equal([
      ['w-a', false, false],
      ['w-bb', true, true],
      ['w-ccc', true, true],
    ]);
    expect(sent.every(([, token, mode]) => token === 'tok' && mode === 'Dual')).to.equal(true);
    refuse = new Set();
    sent.length = 0;
    const second = await modes.sync('ns1/web', pool('Dual'), 'tok', registrations, live);
    expect(second.map((o) => o.worker)).to.deep.equal(['w-a']);
    expect(await modes.sync('ns1/web', pool('Dual'), 'tok', registrations, live)).to.deep.equal([]);
    // A new mode asks every worker again.
    const third = await modes.sync('ns1/web', pool('Centralized'), 'tok', registrations, live);
    expect(third.map((o) => o.worker)).to.deep.equal(['w-a', 'w-bb', 'w-ccc']);
  });

  it('a draining worker that refuses is marked draining, not confirmed, and asked again on the next sync', async () => {
    let draining = true;
    const modes = new ModeSwitches(async () =>
      draining
        ? { status: 503, body: { error: { code: 'WORKER_DRAINING', message: 'worker w-a is draining (shutdown)' } } }
        : { status: 200, body: { report: { from: 'Centralized', steps: ['Dual'] } } },
    );
    const first = await modes.sync('ns1/web', pool('Dual'), 'tok', [reg('w-a')], new Set(['w-a']));
    expect(first.map((o) => [o.ok, o.draining])).to.deep.equal([[false, true]]);
    draining = false;
    const second = await modes.sync('ns1/web', pool('Dual'), 'tok', [reg('w-a')], new Set(['w-a']));
    expect(second.map((o) => [o.ok, o.switched, o.draining])).to.deep.equal([[true, true, undefined]]);
  });

  it('reports a worker that cannot be reached as failed, without throwing', async () => {
    const modes = new ModeSwitches(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    const out = await modes.sync('ns1/web', pool(), 'tok', [reg('w-a')], new Set(['w-a']));
    expect(out).to.deep.equal([{ worker: 'w-a', ok: false, switched: false, detail: 'connect ECONNREFUSED' }]);
  });
});
