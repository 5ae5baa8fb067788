import { expect } from 'chai';
import { SessionModes, type ExecuteResult, type SessionBackend, type SessionMode } from './backends.ts';
import { WorkerError } from './errors.ts';
import { builtinHandlers } from './handlers.ts';
import { MemorySessionStore } from '../store/testing/memory-store.ts';
import type { JsonValue } from '../store/types.ts';
import { codeOf } from './testing/error-code.ts';

const handlers = builtinHandlers();
const incr =
  (key = 'n') =>
  (data: JsonValue, s: { id: string; version: number; anonymous: boolean }) =>
    handlers.run('incr', { key }, data, { sessionId: s.id, version: s.version, anonymous: s.anonymous, pool: 'p', worker: 'w1' });

function modes(store: MemorySessionStore, mode: SessionMode, worker = 'w1'): SessionModes {
  return new SessionModes({ pool: 'p', worker, store, sessionTtlSeconds: 3600, anonTtlSeconds: 300, maxSessionBytes: 4096 }, mode);
}

const value = (r: JsonValue) => (r as { value: number }).value;
/** The result of a run (not a replayed record). */
function ran(r: ExecuteResult): Extract<ExecuteResult, { result: JsonValue }> {
  if ('replayed' in r) throw new Error('replayed a recorded reply instead of running');
  return r;
}

describe('worker session backends', () => {
  for (const mode of ['WorkerLocal', 'Dual', 'Centralized'] as const) {
    it(`${mode}: create, get, execute, delete with the same response shape`, async () => {
      const m = modes(new MemorySessionStore(), mode);
      const run = <T>(f: (b: SessionBackend) => Promise<T>) => m.run(f);
      const s = await run((b) => b.create({ data: { vars: { n: 10 } } }));
      expect(Object.keys(s).sort()).to.deep.equal(['createdAt', 'data', 'id', 'lastAccessedAt', 'ttlSeconds', 'version']);
      expect(s.version).to.equal(1);
      const r = ran(await run((b) => b.execute(s.id, incr())));
      expect(value(r.result)).to.equal(11);
      expect(r.session.version).to.equal(2);
      expect((await run((b) => b.get(s.id))).data).to.deep.equal({ vars: { n: 11 } });
      await run((b) => b.delete(s.id));
      expect(await codeOf(run((b) => b.get(s.id)))).to.match(/^SESSION_NOT_(FOUND|ON_WORKER)$/);
      expect(await codeOf(run((b) => b.create({ data: { big: 'x'.repeat(5000) } })))).to.equal('SESSION_TOO_LARGE');
    });
  }

  it('WorkerLocal answers an unknown session with SESSION_NOT_ON_WORKER', async () => {
    const m = modes(new MemorySessionStore(), 'WorkerLocal');
    expect(await codeOf(m.run((b) => b.get('AAAAAAAAAAAAAAAAAAAAAA')))).to.equal('SESSION_NOT_ON_WORKER');
  });

  it('Centralized never re-runs a handler for a version conflict (FENCED, retryable) and refuses moving sessions', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'Centralized');
    const s = await m.run((b) => b.create({ data: {} }));
    store.injectConflicts = 1;
    let runs = 0;
    const counted = async (data: JsonValue, meta: { id: string; version: number; anonymous: boolean }) => {
      runs++;
      return incr()(data, meta);
    };
    expect(await codeOf(m.run((b) => b.execute(s.id, counted)))).to.equal('FENCED');
    expect(runs).to.equal(1);
    expect(store.peek(s.id)?.version).to.equal(2); // the other writer's version: this write did not apply
    await store.setMoving('p', [s.id], 'mig-1');
    expect(await codeOf(m.run((b) => b.execute(s.id, counted)))).to.equal('SESSION_MOVING');
    expect(runs).to.equal(1);
  });

  for (const mode of ['Dual', 'Centralized'] as const) {
    it(`${mode}: a write refused while the handler ran is answered FENCED, the handler not re-run, nothing written`, async () => {
      const store = new MemorySessionStore();
      const m = modes(store, mode);
      const s = await m.run((b) => b.create({ data: { vars: { n: 1 } } }));
      let runs = 0;
      const racing = async (data: JsonValue, meta: { id: string; version: number; anonymous: boolean }) => {
        runs++;
        store.injectConflicts = 1; // another writer got in while this handler ran
        return incr()(data, meta);
      };
      expect(await codeOf(m.run((b) => b.execute(s.id, racing)))).to.equal('FENCED');
      expect(runs).to.equal(1);
      expect((await m.run((b) => b.get(s.id))).data).to.deep.equal({ vars: { n: 1 } });
    });
  }

  it('WorkerLocal: a request with a recorded Idempotency-Key gets the recorded reply, and the handler does not run', async () => {
    const m = modes(new MemorySessionStore(), 'WorkerLocal');
    const s = await m.run((b) => b.create({ data: {} }));
    let runs = 0;
    const counted = (data: JsonValue, session: { id: string; version: number; anonymous: boolean }) => {
      runs++;
      return incr()(data, session);
    };
    const first = ran(await m.run((b) => b.execute(s.id, counted, { idempotencyKey: 'k1' })));
    const retry = await m.run((b) => b.execute(s.id, counted, { idempotencyKey: 'k1' }));
    expect(runs).to.equal(1);
    expect(retry).to.deep.equal({
      replayed: { status: 200, body: { sessionId: s.id, version: first.session.version, result: first.result } },
    });
    const other = ran(await m.run((b) => b.execute(s.id, counted, { idempotencyKey: 'k2' })));
    expect([value(other.result), runs]).to.deep.equal([2, 2]);
  });

  it("WorkerLocal runs one session's requests one at a time: concurrent ones queue, each handler runs once", async () => {
    const m = modes(new MemorySessionStore(), 'WorkerLocal');
    const s = await m.run((b) => b.create({ data: { vars: { n: 0 } } }));
    let running = 0;
    let most = 0;
    let runs = 0;
    const slow = async (data: JsonValue, meta: { id: string; version: number; anonymous: boolean }) => {
      runs++;
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return incr()(data, meta);
    };
    await Promise.all(Array.from({ length: 5 }, () => m.run((b) => b.execute(s.id, slow))));
    expect(runs).to.equal(5);
    expect(most).to.equal(1);
    expect((await m.run((b) => b.get(s.id))).data).to.deep.equal({ vars: { n: 5 } });
  });

  it('Centralized maps a fenced write (owner moved between read and write) to FENCED', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'Centralized');
    const s = await m.run((b) => b.create({ data: {} }));
    const slow = async (data: JsonValue, meta: { id: string; version: number; anonymous: boolean }) => {
      const rec = store.peek(s.id);
      if (rec) await store.moveOwners('p', [{ sessionId: s.id, fromOwner: rec.owner, fromEpoch: rec.epoch, toOwner: 'w2' }]);
      return incr()(data, meta);
    };
    expect(await codeOf(m.run((b) => b.execute(s.id, slow)))).to.equal('FENCED');
    expect(store.peek(s.id)?.version).to.equal(1);
  });

  it('anonymous runs leave no session behind, also on failure', async () => {
    for (const mode of ['WorkerLocal', 'Centralized'] as const) {
      const store = new MemorySessionStore();
      const m = modes(store, mode);
      const results = await Promise.all(Array.from({ length: 20 }, () => m.run((b) => b.executeAnonymous({}, incr()))));
      expect(results.map(value)).to.deep.equal(Array(20).fill(1));
      const failing = () => Promise.reject(new WorkerError('HANDLER_ERROR', 'boom'));
      expect(await codeOf(m.run((b) => b.executeAnonymous({}, failing)))).to.equal('HANDLER_ERROR');
      expect(store.sessions.size).to.equal(0);
      expect(m.local.size).to.equal(0);
    }
  });

  it('Dual reads fall back to the local copy when the store is unreachable', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'Dual');
    const s = await m.run((b) => b.create({ data: { a: 1 } }));
    store.unreachable = true;
    expect((await m.run((b) => b.get(s.id))).data).to.deep.equal({ a: 1 });
    expect(await codeOf(m.run((b) => b.execute(s.id, incr())))).to.equal('STORE_UNAVAILABLE');
  });

  it("the switch to Dual never writes a local session over another pool's session of the same id", async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'WorkerLocal');
    const id = (await m.run((b) => b.create({ data: {} }))).id;
    for (let i = 0; i < 2; i++) await m.run((b) => b.execute(id, incr()));
    await store.importSession({ id, pool: 'other-ns/p', data: { theirs: true }, version: 1, createdAt: 0, ttlSeconds: 3600, owner: null });
    await m.switchTo('Dual').catch(() => undefined);
    expect(await store.get(id, { pool: 'other-ns/p', touch: false })).to.deep.include({
      pool: 'other-ns/p',
      version: 1,
      data: { theirs: true },
    });
  });

  it('switches WorkerLocal -> Dual -> Centralized -> Dual -> WorkerLocal keeping every session and version', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'WorkerLocal');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await m.run((b) => b.create({ data: {} }))).id);
    let expected = 0;
    const bumpAll = async () => {
      expected++;
      for (const id of ids) expect(value(ran(await m.run((b) => b.execute(id, incr()))).result)).to.equal(expected);
    };
    await bumpAll();
    const toDual = await m.switchTo('Dual');
    expect(toDual.copiedToStore).to.equal(5);
    await bumpAll();
    const toCentral = await m.switchTo('Centralized');
    expect(toCentral.steps).to.deep.equal(['Centralized']);
    expect(m.local.size).to.equal(0);
    await bumpAll();
    const back = await m.switchTo('WorkerLocal');
    expect(back.steps).to.deep.equal(['Dual', 'WorkerLocal']);
    expect(back.pulledFromStore).to.equal(10);
    await bumpAll();
    for (const id of ids) {
      const s = await m.run((b) => b.get(id));
      expect(s.data).to.deep.equal({ vars: { n: 4 } });
      expect(s.version).to.equal(5);
    }
  });

  it("Dual -> WorkerLocal: owned sessions move into memory (store copy deleted), a stale copy of another worker's is dropped", async () => {
    const store = new MemorySessionStore();
    const w1 = modes(store, 'Dual', 'w1');
    const w2 = modes(store, 'Dual', 'w2');
    const mine = (await w1.run((b) => b.create({ data: {} }))).id;
    const moved = (await w1.run((b) => b.create({ data: {} }))).id;
    // `moved` goes to w2, which writes it: w1 keeps a stale local copy.
    const record = await store.get(moved, { pool: 'p', touch: false });
    await store.moveOwners('p', [{ sessionId: moved, fromOwner: 'w1', fromEpoch: record!.epoch, toOwner: 'w2' }]);
    await w2.run((b) => b.execute(moved, incr()));
    expect(w1.local.has(moved)).to.equal(true);

    expect((await w1.switchTo('WorkerLocal')).pulledFromStore).to.equal(1);
    expect(w1.local.ids()).to.deep.equal([mine]);
    expect(await store.get(mine, { pool: 'p', touch: false }), 'taken into memory: no store copy').to.equal(null);
    expect((await store.get(moved, { pool: 'p', touch: false }))?.owner, "w2's session stays in the store").to.equal('w2');
    await w2.switchTo('WorkerLocal');
    expect((await w2.run((b) => b.get(moved))).data).to.deep.equal({ vars: { n: 1 } });
    expect(await store.get(moved, { pool: 'p', touch: false })).to.equal(null);

    // A WorkerLocal drain writes memory to the store, owned by the worker, and memory no longer holds it.
    expect(await w1.flushLocal()).to.equal(1);
    expect(w1.local.size).to.equal(0);
    expect((await store.get(mine, { pool: 'p', touch: false }))?.owner).to.equal('w1');
  });

  it('taking a session into memory waits out a switch, and is a retry once the worker left WorkerLocal (the store keeps it)', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'WorkerLocal');
    const [taken, late] = store.seed('p', 'w1', 2) as [string, string];
    const read = async (id: string) => store.get(id, { pool: 'p', touch: false });
    // A take in flight (its store delete held back) holds a switch to Dual: the switch then finds the session
    // in memory only, and copies it back to the store.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.beforeCall = (method) => (method === 'delete' ? held : undefined);
    const taking = m.takeIntoMemory((await read(taken))!);
    const switching = m.switchTo('Dual');
    await new Promise((resolve) => setImmediate(resolve));
    expect(m.mode, 'the switch waits for the take').to.equal('WorkerLocal');
    release();
    await taking;
    expect((await switching).copiedToStore).to.equal(1);
    store.beforeCall = undefined;
    expect((await read(taken))?.id, 'back in the store for Dual').to.equal(taken);
    // In Dual a take (a WorkerLocal load that read the store before the switch) is refused, and deletes nothing.
    expect(await codeOf(m.takeIntoMemory((await read(late))!))).to.equal('SESSION_MOVING');
    expect(m.local.has(late)).to.equal(false);
    expect((await read(late))?.id).to.equal(late);
  });

  it('holds requests during a switch and runs them in the new mode', async () => {
    const store = new MemorySessionStore();
    const m = modes(store, 'WorkerLocal');
    const s = await m.run((b) => b.create({ data: {} }));
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const slowIncr = async (data: JsonValue, meta: { id: string; version: number; anonymous: boolean }) => {
      await blocked;
      return incr()(data, meta);
    };
    const inFlight = m.run((b) => b.execute(s.id, slowIncr));
    const switching = m.switchTo('Dual');
    const held = m.run(async (b) => b.mode);
    expect(await codeOf(m.switchTo('Centralized'))).to.equal('MODE_SWITCH_IN_PROGRESS');
    release();
    expect(value(ran(await inFlight).result)).to.equal(1);
    await switching;
    expect(await held).to.equal('Dual');
    expect(store.peek(s.id)?.data).to.deep.equal({ vars: { n: 1 } });
  });
});
