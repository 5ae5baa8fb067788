// A worker's handover of its activations (POST /admin/handover) racing a request that sets one up.
import { expect } from 'chai';
import { createLogger } from '../../observability/logger.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import type { Lease } from '../../store/types.ts';
import { WorkerDirectory } from './forward.ts';
import { handover } from './handover.ts';
import { ActivationRegistry } from './registry.ts';

describe('handover', () => {
  it('waits for an activation being set up (its lease adopted) and hands it over, leaving no stale activation', async () => {
    const store = new MemorySessionStore();
    const [id] = store.seed('p', 'w1', 1) as [string];
    // The adoption's renew applies at once, its answer is held back: the handover arrives in between.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let applied!: () => void;
    const renewApplied = new Promise<void>((resolve) => (applied = resolve));
    const renew = store.renew.bind(store);
    store.renew = async (lease: Lease, leaseMs?: number) => {
      const renewed = await renew(lease, leaseMs);
      applied();
      await held;
      return renewed;
    };
    const logger = createLogger('test').child({}, { level: 'silent' });
    const registry = new ActivationRegistry({
      store,
      pool: 'p',
      worker: 'w1',
      leaseMs: 30_000,
      idleMs: 60_000,
      directory: new WorkerDirectory(store, 'p'),
      logger,
    });

    const routing = registry.route(id);
    await renewApplied;
    const handing = handover(
      { store, pool: 'p', worker: 'w1', registry, logger },
      { migration: 'default/m/0', deadlineMs: 2_000, moves: [{ sessionId: id, target: 'w2' }] },
    );
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const route = await routing;
    const { results } = await handing;

    expect(results.map((r) => r.outcome)).to.deep.equal(['moved']);
    expect(store.peek(id)?.owner).to.equal('w2');
    expect(registry.get(id), 'no activation left on the source').to.equal(undefined);
    // The request that set the activation up is sent on to the target, not run on a stale lease.
    expect(route.kind === 'local' && route.activation.ended?.target).to.equal('w2');
  });
});
