import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { newSessionMigration, newSessionPool, type SessionMigration, type SessionMigrationStatus } from '../../api/index.ts';
import { FakeSessionStore } from '../../migration/testing/fake-store.ts';
import { MemoryJournal } from '../../migration/testing/memory-journal.ts';
import { createLogger } from '../../observability/logger.ts';
import { MigrationRunner, type RunnerDeps } from './runner.ts';

/** The store identity of SessionPool ns/p. */
const POOL_ID = 'ns/p';

/** A worker pod of pool p, as its Deployment's ReplicaSet makes it. */
function pod(name: string, node: string): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'ns',
      labels: { 'dspex.io/pool': 'p', 'app.kubernetes.io/component': 'session-worker' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'p-workers-5d8f7c9b6', uid: 'rs', controller: true }],
    },
    spec: { nodeName: node, containers: [] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** Pods of the namespace that are not the pool's: another workload's, and one that only wears the pool label. */
const FOREIGN_PODS: V1Pod[] = [
  { metadata: { name: 'db-0', namespace: 'ns', labels: { app: 'db' } }, spec: { containers: [] }, status: { phase: 'Running' } },
  {
    metadata: { name: 'lookalike', namespace: 'ns', labels: { 'dspex.io/pool': 'p' } },
    spec: { containers: [] },
    status: { phase: 'Running' },
  },
];

function setup(workers: string[]) {
  const store = new FakeSessionStore();
  const journal = new MemoryJournal();
  for (const w of workers) store.addWorker(POOL_ID, w);
  const pool = newSessionPool('p', 'ns', { replicas: workers.length, worker: { image: 'i' }, store: { endpoints: ['r:1'] } });
  const statuses: SessionMigrationStatus[] = [];
  const events: string[] = [];
  const evicted: string[] = [];
  const deps: RunnerDeps = {
    getPool: async () => pool,
    listPods: () => [...workers.map((w, i) => pod(w, `n${i}`)), ...FOREIGN_PODS],
    drainingNodes: () => new Set(),
    storeFor: async () => ({ store, journal, pool: POOL_ID, keyPrefix: 'spo' }),
    writeStatus: async (_m, status) => void statuses.push(structuredClone(status)),
    event: (_m, type, reason) => void events.push(`${type}/${reason}`),
    eviction: {
      createNamespacedPodEviction: async ({ name }: { name: string }) => {
        evicted.push(name);
        return {};
      },
    },
    registry: new Registry(),
    logger: createLogger('test').child({}, { level: 'silent' }),
    graceMs: 0,
    waitMs: 10,
  };
  return { store, journal, deps, statuses, events, evicted };
}

function migration(spec: Parameters<typeof newSessionMigration>[2]): SessionMigration {
  const m = newSessionMigration('m', 'ns', spec);
  m.metadata.uid = 'uid-1';
  m.metadata.generation = 1;
  return m;
}

describe('migration runner (fake store and journal)', () => {
  it('a dry run plans and moves nothing: Pending -> Planning -> Succeeded', async () => {
    const { store, deps, statuses } = setup(['a', 'b', 'c']);
    store.seed(POOL_ID, 'a', 10);
    await new MigrationRunner(deps).run(
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, dryRun: true }),
      new AbortController().signal,
    );
    expect(statuses.map((s) => s.phase)).to.deep.equal(['Planning', 'Succeeded']);
    const last = statuses.at(-1)!;
    expect(last.reason).to.equal('DryRun');
    expect(last.plan?.totalSessions).to.equal(10);
    expect(store.ownersOf(POOL_ID).get('a')).to.equal(10);
    expect(store.calls.get('moveOwners') ?? 0).to.equal(0);
  });

  it('an Evacuate moves every session off the source, then marks it draining', async () => {
    const { store, deps, statuses, events } = setup(['a', 'b', 'c']);
    store.seed(POOL_ID, 'a', 25);
    store.seed(POOL_ID, 'b', 5);
    await new MigrationRunner(deps).run(
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, batchSize: 4 }),
      new AbortController().signal,
    );
    const last = statuses.at(-1)!;
    expect(last.phase, last.message).to.equal('Succeeded');
    expect(last.progress).to.deep.equal({ moved: 25, remaining: 0, failed: 0 });
    expect(last.journalKey).to.equal('{spo:mig:ns/p:uid-1}:h');
    expect(store.ownersOf(POOL_ID).get('a') ?? 0).to.equal(0);
    expect(store.ownersOf(POOL_ID).get('b')! + store.ownersOf(POOL_ID).get('c')!).to.equal(30);
    expect(store.workers.get(`${POOL_ID}/a`)?.draining).to.equal(true);
    expect(statuses.map((s) => s.phase)).to.include.members(['Planning', 'Running', 'Succeeded']);
    expect(events).to.include.members(['Normal/Planning', 'Normal/Running', 'Normal/Succeeded']);
  });

  it('an Evacuate without a target waits, then fails NoTargets by its deadline and leaves the source serving', async () => {
    const { store, deps, statuses } = setup(['a']);
    store.seed(POOL_ID, 'a', 3);
    const m = migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, deadlineSeconds: 1 });
    await new MigrationRunner(deps).run(m, new AbortController().signal);
    const last = statuses.at(-1)!;
    expect(last.phase).to.equal('Failed');
    expect(last.reason).to.equal('NoTargets');
    expect(last.completionTime).to.be.a('string');
    expect(store.ownersOf(POOL_ID).get('a')).to.equal(3);
    expect(store.workers.get(`${POOL_ID}/a`)?.draining).to.equal(false);
  });

  it("evicts, after an Evacuate, only the pool's own workers, never other pods the spec names", async () => {
    const { store, deps, statuses, events, evicted } = setup(['a', 'b']);
    store.seed(POOL_ID, 'a', 4);
    await new MigrationRunner(deps).run(
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a', 'db-0', 'lookalike'], evictPods: true } }),
      new AbortController().signal,
    );
    const last = statuses.at(-1)!;
    expect(last.phase, last.message).to.equal('Succeeded');
    expect(evicted).to.deep.equal(['a']);
    expect(events).to.include('Warning/NotPoolPods');
  });

  it("force-drain releases and evicts only the pool's own workers, and says which named pods it left alone", async () => {
    const { store, deps, statuses, evicted } = setup(['a', 'b']);
    store.seed(POOL_ID, 'a', 3);
    const m = migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a', 'db-0', 'lookalike'] } });
    m.metadata.annotations = { 'dspex.io/force-drain': 'true' };
    m.status = { phase: 'Failed', reason: 'NoTargets' };
    await new MigrationRunner(deps).run(m, new AbortController().signal);
    expect(evicted).to.deep.equal(['a']);
    const forced = statuses.at(-1)?.conditions?.find((c) => c.type === 'ForcedRelease');
    expect(forced?.status).to.equal('True');
    expect(forced?.message).to.contain('3 sessions released').and.to.contain('not workers of pool p: db-0, lookalike');
    expect(store.ownersOf(POOL_ID).get('a') ?? 0).to.equal(0);
  });

  it('a Running migration resumes the journal named in its status and never re-plans', async () => {
    const { store, journal, deps, statuses } = setup(['a', 'b']);
    store.seed(POOL_ID, 'a', 12);
    const m = migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, batchSize: 3 });
    // First run: interrupted after two batches (an operator crash, as far as the journal knows).
    const abort = new AbortController();
    let batches = 0;
    const crashing = new MigrationRunner(deps);
    const origin = journal.transition.bind(journal);
    journal.transition = async (uid, entry, deltas) => {
      const changed = await origin(uid, entry, deltas);
      if (entry.state === 'moved' && ++batches === 2) abort.abort();
      return changed;
    };
    await crashing.run(m, abort.signal);
    journal.transition = origin;
    const running = statuses.at(-1)!;
    expect(running.phase).to.equal('Running');
    expect(store.ownersOf(POOL_ID).get('a')).to.equal(6);
    // Restart: the object as the apiserver has it.
    const planReads = store.calls.get('countByOwner') ?? 0;
    await new MigrationRunner(deps).run({ ...m, status: running }, new AbortController().signal);
    const last = statuses.at(-1)!;
    expect(last.phase, last.message).to.equal('Succeeded');
    expect(last.progress?.moved).to.equal(12);
    expect(store.ownersOf(POOL_ID).get('b')).to.equal(12);
    // Resumed from the journal: no new plan was made (planning reads the target loads).
    expect(store.calls.get('countByOwner') ?? 0).to.equal(planReads);
  });
});
