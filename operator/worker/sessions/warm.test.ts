// The warm path of a Centralized activation (docs/activation.md, "Warm state"): a request runs on the
// activation's last record without reading the store first; the write still carries the version and
// the fence, so a stale record writes nothing.
import { expect } from 'chai';
import { Activation } from '../activation/activation.ts';
import { RecordedKeys, SessionModes, type ExecuteOptions, type SessionMode } from '../backends.ts';
import { builtinHandlers } from '../handlers.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import type { JsonValue, SessionRecord } from '../../store/types.ts';
import { codeOf } from '../testing/error-code.ts';

const handlers = builtinHandlers();
type Meta = { id: string; version: number; anonymous: boolean };
const run = (name: string, args: JsonValue) => (data: JsonValue, s: Meta) =>
  handlers.run(name, args, data, { sessionId: s.id, version: s.version, anonymous: s.anonymous, pool: 'p', worker: 'w1' });

/** A session created by w1 (its owner at epoch 1 in the fake store) and its activation's slot, warm. */
async function setup(mode: SessionMode = 'Centralized', warmWrites = true) {
  const store = new MemorySessionStore();
  const modes = new SessionModes(
    { pool: 'p', worker: 'w1', store, sessionTtlSeconds: 3600, anonTtlSeconds: 300, maxSessionBytes: 4096, warmWrites },
    mode,
  );
  const view = await modes.run((b) => b.create({ data: { vars: { n: 1 } } }));
  const record = structuredClone(store.peek(view.id)!); // a copy, as the store's replies are
  const slot = { record: record as SessionRecord | undefined, warm: () => slot.record };
  const options: ExecuteOptions = { fence: { owner: 'w1', epoch: record.epoch }, remember: slot };
  const execute = (step: ReturnType<typeof run>) => modes.run((b) => b.execute(view.id, step, options));
  const reads = () => store.calls.get('get') ?? 0;
  return { store, modes, id: view.id, slot, execute, reads };
}

describe('Centralized warm path', () => {
  it('runs a write on the warm record without reading the store, and remembers what it wrote', async () => {
    const { store, id, slot, execute, reads } = await setup();
    const before = reads();
    const out = await execute(run('incr', { key: 'n' }));
    expect(reads()).to.equal(before);
    expect('result' in out && out.session.version).to.equal(2);
    expect(store.peek(id)?.data).to.deep.equal({ vars: { n: 2 } });
    expect(slot.record?.version).to.equal(2);
    await execute(run('incr', { key: 'n' }));
    expect(reads()).to.equal(before);
    expect(store.peek(id)?.data).to.deep.equal({ vars: { n: 3 } });
  });

  it('is off by default (as in workers): a request reads the store before its handler runs, and a moving mark refuses it unrun', async () => {
    const { store, id, execute, reads } = await setup('Centralized', false);
    const before = reads();
    await execute(run('incr', { key: 'n' }));
    expect(reads()).to.equal(before + 1);
    await store.setMoving('p', [id], 'm1');
    let runs = 0;
    const counted = (data: JsonValue, meta: Meta) => (runs++, run('incr', { key: 'n' })(data, meta));
    expect(await codeOf(execute(counted))).to.equal('SESSION_MOVING');
    expect(runs).to.equal(0);
  });

  it('a stale warm record (moved at store level) writes nothing: FENCED, the handler run once, the slot cleared', async () => {
    const { store, id, slot, execute } = await setup();
    await store.moveOwners('p', [{ sessionId: id, fromOwner: 'w1', fromEpoch: slot.record!.epoch, toOwner: 'w2' }]);
    let runs = 0;
    const counted = (data: JsonValue, meta: Meta) => (runs++, run('incr', { key: 'n' })(data, meta));
    expect(await codeOf(execute(counted))).to.equal('FENCED');
    expect(runs).to.equal(1);
    expect(store.peek(id)?.data).to.deep.equal({ vars: { n: 1 } });
    expect(store.peek(id)?.owner).to.equal('w2');
    expect(slot.record).to.equal(undefined);
  });

  it('a handler that changes nothing is followed by a read, which must find the session as the warm record has it', async () => {
    const { store, id, execute, reads } = await setup();
    const before = reads();
    const out = await execute(run('echo', { x: 1 }));
    expect(reads()).to.equal(before + 1);
    expect('result' in out && out.result).to.deep.equal({ x: 1 });
    store.injectConflicts = 1; // another writer: the session's version moves on
    await store.update(id, { vars: { n: 5 } }, { pool: 'p', expectedVersion: 1 }).catch(() => undefined);
    await store.update(id, { vars: { n: 5 } }, { pool: 'p', expectedVersion: store.peek(id)!.version });
    expect(await codeOf(execute(run('echo', { x: 1 })))).to.equal('FENCED');
  });

  it('Dual reads before running even with a warm record', async () => {
    const { execute, reads } = await setup('Dual');
    const before = reads();
    await execute(run('incr', { key: 'n' }));
    expect(reads()).to.equal(before + 1);
  });
});

describe('Centralized keyed execute of a session created here (warm writes off)', () => {
  /** A keyed execute as the activation sends it; the fake store has no idempotency records, so its
   *  lookup is a counting stand-in that finds none. */
  async function keyedSetup(mode: SessionMode = 'Centralized', keys = new RecordedKeys(true)) {
    const s = await setup(mode, false);
    let lookups = 0;
    Object.assign(s.store, { recordedReply: () => (lookups++, Promise.resolve(undefined)) });
    const options = (key: string): ExecuteOptions => ({
      fence: { owner: 'w1', epoch: s.slot.record!.epoch },
      idempotencyKey: key,
      remember: { ...s.slot, keys },
    });
    const keyed = (key: string, step: ReturnType<typeof run>) => s.modes.run((b) => b.execute(s.id, step, options(key)));
    return { ...s, keyed, lookups: () => lookups };
  }

  it('does not look up a key the activation knows is not recorded, still reads first; a key it recorded is looked up', async () => {
    const { store, id, keyed, lookups, reads } = await keyedSetup();
    const before = reads();
    await keyed('k1', run('incr', { key: 'n' }));
    expect(lookups()).to.equal(0);
    expect(reads()).to.equal(before + 1); // the read before the handler stays
    expect(store.peek(id)?.data).to.deep.equal({ vars: { n: 2 } });
    await keyed('k1', run('incr', { key: 'n' }));
    expect(lookups()).to.equal(1);
  });

  it('an activation that did not begin with the creation looks every key up', async () => {
    const { keyed, lookups } = await keyedSetup('Centralized', new RecordedKeys(false));
    await keyed('k1', run('incr', { key: 'n' }));
    expect(lookups()).to.equal(1);
  });

  it('a session moved at store level is refused before its handler runs, nothing written', async () => {
    const { store, id, slot, keyed, lookups } = await keyedSetup();
    await store.moveOwners('p', [{ sessionId: id, fromOwner: 'w1', fromEpoch: slot.record!.epoch, toOwner: 'w2' }]);
    let runs = 0;
    const counted = (data: JsonValue, meta: Meta) => (runs++, run('incr', { key: 'n' })(data, meta));
    expect(await codeOf(keyed('k2', counted))).to.equal('FENCED');
    expect(runs).to.equal(0);
    expect(lookups()).to.equal(0);
    expect(store.peek(id)?.data).to.deep.equal({ vars: { n: 1 } });
  });

  it('a session with a moving mark is refused before its handler runs', async () => {
    const { store, id, keyed } = await keyedSetup();
    await store.setMoving('p', [id], 'm1');
    let runs = 0;
    const counted = (data: JsonValue, meta: Meta) => (runs++, run('incr', { key: 'n' })(data, meta));
    expect(await codeOf(keyed('k3', counted))).to.equal('SESSION_MOVING');
    expect(runs).to.equal(0);
  });

  it('Dual looks every key up', async () => {
    const { keyed, lookups } = await keyedSetup('Dual');
    await keyed('k1', run('incr', { key: 'n' }));
    expect(lookups()).to.equal(1);
  });
});

describe('activation warm record', () => {
  const lease = (expiresAt: number) => ({ sessionId: 's1', pool: 'p', owner: 'w1', epoch: 3, expiresAt });
  const record = { owner: 'w1', epoch: 3, version: 7 } as SessionRecord;

  it('is given only while trusted, uncontested, live and unexpired, and at the lease’s owner and epoch', () => {
    let trusted = true;
    const a = new Activation(lease(Date.now() + 10_000), () => trusted);
    expect(a.warm()).to.equal(undefined); // nothing read or written yet
    a.record = record;
    expect(a.warm()).to.equal(record);
    trusted = false; // the worker's registration is not known fresh: a peer may take it for gone
    expect(a.warm()).to.equal(undefined);
    trusted = true;
    a.record = { ...record, epoch: 2 };
    expect(a.warm()).to.equal(undefined);
    a.record = record;
    a.contested = true; // a handover was asked for it
    expect(a.warm()).to.equal(undefined);
    a.contested = false;
    expect(a.warm(Date.now() + 20_000)).to.equal(undefined); // the lease lapsed
    a.end({ reason: 'released' });
    expect(a.warm()).to.equal(undefined);
  });

  it('is never given without a trust source (the default)', () => {
    const a = new Activation(lease(Date.now() + 10_000));
    a.record = record;
    expect(a.warm()).to.equal(undefined);
    expect(a.lastKnown()).to.equal(record);
  });
});

describe('recorded keys of an activation', () => {
  it('knows a key is not recorded only while it knows every key (a session created here), up to its bound', () => {
    const keys = new RecordedKeys(true, 2);
    expect(keys.mayHave('a')).to.equal(false);
    keys.recorded('a');
    expect(keys.mayHave('a')).to.equal(true);
    expect(keys.mayHave('b')).to.equal(false);
    keys.recorded('b');
    keys.recorded('c'); // over the bound: it no longer knows
    expect(keys.mayHave('z')).to.equal(true);
  });

  it('knows nothing for a session it did not create, nor after an unknown outcome', () => {
    expect(new RecordedKeys(false).mayHave('a')).to.equal(true);
    const keys = new RecordedKeys(true);
    keys.unknown();
    expect(keys.mayHave('a')).to.equal(true);
    keys.recorded('b');
    expect(keys.mayHave('c')).to.equal(true);
  });

  it('an activation knows its keys only when it began with the session’s creation', () => {
    const lease = { sessionId: 's1', pool: 'p', owner: 'w1', epoch: 1, expiresAt: Date.now() + 10_000 };
    expect(new Activation(lease, () => true, true).keys.mayHave('k')).to.equal(false);
    expect(new Activation(lease, () => true).keys.mayHave('k')).to.equal(true);
  });
});
