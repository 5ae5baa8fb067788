import { expect } from 'chai';
import { Activation } from './activation.ts';
import { MAX_HANDOVER_MOVES, validateHandover } from './handover.ts';

const ID = 'AAAAAAAAAAAAAAAAAAAAAA';
// An hour: the tier may run this file long after loading it (a loaded machine took over 30 s).
const lease = { sessionId: ID, pool: 'ns/p', owner: 'w1', epoch: 3, expiresAt: Date.now() + 3_600_000 };
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('activation', () => {
  it('knows its last record only while live, at its owner and epoch, and before its lease expires', () => {
    const a = new Activation(lease);
    expect(a.lastKnown()).to.equal(undefined);
    const record = {
      id: ID,
      pool: 'ns/p',
      data: { n: 1 },
      version: 2,
      createdAt: 0,
      lastAccessedAt: 0,
      ttlSeconds: 3600,
      anonymous: false,
      owner: 'w1',
      epoch: 3,
      movingBy: null,
      checksum: '',
    };
    a.record = record;
    expect(a.lastKnown()).to.equal(record);
    expect(a.lastKnown(lease.expiresAt), 'the lease has expired: another worker may have written').to.equal(undefined);
    a.record = { ...record, epoch: 2 };
    expect(a.lastKnown(), 'read at another epoch').to.equal(undefined);
    a.record = record;
    a.end({ reason: 'handed-over', target: 'w2' });
    expect(a.lastKnown()).to.equal(undefined);
  });

  it('runs requests one at a time in arrival order, also when one fails', async () => {
    const a = new Activation(lease);
    const order: string[] = [];
    let running = 0;
    const step = (name: string, fail = false) =>
      a.enqueue(async () => {
        expect(++running).to.equal(1);
        order.push(`${name}:start`);
        await tick();
        order.push(`${name}:end`);
        running--;
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([step('a'), step('b', true), step('c')]);
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect(order).to.deep.equal(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
    expect(a.idle).to.equal(true);
  });

  it('hold waits for the running request and keeps queued ones waiting; after the end they see it', async () => {
    const a = new Activation(lease);
    let release!: () => void;
    const running = a.enqueue(() => new Promise<string>((resolve) => (release = () => resolve('ran'))));
    const seen: unknown[] = [];
    const queued = a.enqueue(async (ended) => void seen.push(ended));
    await tick();
    const held = a.hold(Date.now() + 5_000);
    await tick();
    expect(seen).to.deep.equal([]);
    release();
    expect(await held).to.equal(true);
    expect(await running).to.equal('ran');
    await tick();
    expect(seen).to.deep.equal([]); // held at the gate
    a.end({ reason: 'handed-over', target: 'w2' });
    a.open();
    await queued;
    expect(seen).to.deep.equal([{ reason: 'handed-over', target: 'w2' }]);
  });

  it('hold answers false when the running request outlives the deadline', async () => {
    const a = new Activation(lease);
    let release!: () => void;
    const running = a.enqueue(() => new Promise<void>((resolve) => (release = resolve)));
    await tick();
    expect(await a.hold(Date.now() + 5)).to.equal(false);
    a.open();
    release();
    await running;
  });
});

describe('handover body', () => {
  const ok = { migration: 'ns/m/1', deadlineMs: 1000, moves: [{ sessionId: ID, target: 'w2' }] };

  it('takes a well-formed body, deadline defaulted', () => {
    expect(validateHandover(ok)).to.deep.equal(ok);
    expect(validateHandover({ migration: 'ns/m/1', moves: ok.moves }).deadlineMs).to.equal(10_000);
  });

  it('refuses every malformed body with INVALID_REQUEST', () => {
    const many = Array.from({ length: MAX_HANDOVER_MOVES + 1 }, (_, i) => ({ sessionId: `${ID}${i}`, target: 'w2' }));
    for (const bad of [
      null,
      [],
      'x',
      {},
      { ...ok, migration: '' },
      { ...ok, deadlineMs: -1 },
      { ...ok, deadlineMs: 1.5 },
      { ...ok, moves: [] },
      { ...ok, moves: many },
      { ...ok, moves: [{ sessionId: 'short', target: 'w2' }] },
      { ...ok, moves: [{ sessionId: ID, target: 'bad name' }] },
      { ...ok, moves: [{ sessionId: ID, target: 'w2', extra: 1 }] },
      { ...ok, moves: [...ok.moves, ...ok.moves] },
      { ...ok, extra: true },
    ]) {
      expect(() => validateHandover(bad), JSON.stringify(bad)?.slice(0, 80))
        .to.throw()
        .with.property('code', 'INVALID_REQUEST');
    }
  });
});
