import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { newSessionMigration, newSessionPool, type SessionMigration, type SessionMigrationStatus } from '../../api/index.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import { MemoryJournal } from '../../migration/testing/memory-journal.ts';
import { createLogger } from '../../observability/logger.ts';
import { MigrationRunner, type RunnerDeps } from './runner.ts';

/**
 * Drives a migration as the work queue does: one step per reconcile, each seeing the status the
 * last one wrote, until a step asks for nothing more (bounded: a runaway machine fails the test).
 */
async function drive(
  runner: MigrationRunner,
  m: SessionMigration,
  statuses: SessionMigrationStatus[],
  signal = new AbortController().signal,
): Promise<number> {
  for (let steps = 1; steps <= 500; steps++) {
    const current = { ...m, ...(statuses.length ? { status: structuredClone(statuses.at(-1)!) } : {}) };
    const result = await runner.step(current, signal);
    if (result.requeueAfterMs === undefined || signal.aborted) return steps;
    if (result.requeueAfterMs > 1) await new Promise((resolve) => setTimeout(resolve, result.requeueAfterMs));
  }
  throw new Error('the migration took more than 500 steps');
}

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
  const store = new MemorySessionStore();
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
    stepBudgetMs: 0,
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
    await drive(
      new MigrationRunner(deps),
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, dryRun: true }),
      statuses,
    );
    expect(statuses.map((s) => s.phase)).to.deep.equal(['Planning', 'Succeeded']);
    const last = statuses.at(-1)!;
    expect(last.reason).to.equal('DryRun');
    expect(last.plan?.totalSessions).to.equal(10);
    expect(store.ownersOf(POOL_ID).get('a')).to.equal(10);
    expect(store.calls.get('moveOwners') ?? 0).to.equal(0);
  });

  it('an Evacuate moves every session off the source a batch per step, marks it draining, then evicts its pod', async () => {
    const { store, journal, deps, statuses, events, evicted } = setup(['a', 'b', 'c']);
    store.seed(POOL_ID, 'a', 25);
    store.seed(POOL_ID, 'b', 5);
    let planReads = 0;
    const readPlan = journal.plan.bind(journal);
    journal.plan = async (uid) => {
      planReads += 1;
      return readPlan(uid);
    };
    const steps = await drive(
      new MigrationRunner(deps),
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, batchSize: 4 }),
      statuses,
    );
    // start, plan, 7 batches (one per step at a zero budget), the end of the round, the pod removal.
    expect(steps).to.equal(11);
    const moved = statuses.filter((s) => s.phase === 'Running').map((s) => s.progress?.moved);
    expect(moved).to.deep.equal([0, 4, 8, 12, 16, 20, 24, 25, 25]);
    // The saved plan is read back once, not at every slice.
    expect(planReads).to.equal(1);
    expect(evicted).to.deep.equal(['a']);
    expect(statuses.at(-1)?.conditions?.find((c) => c.type === 'PodsEvicted')).to.include({ status: 'True', reason: 'PodsEvicted' });
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
    const m = migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, deadlineSeconds: 2 });
    const steps = await drive(new MigrationRunner(deps), m, statuses);
    // It waited (requeued, no status write) rather than blocking a queue worker. (startTime has
    // whole seconds: a 2 s deadline leaves at least 1 s of waiting.)
    expect(steps).to.be.greaterThan(3);
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
    await drive(
      new MigrationRunner(deps),
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a', 'db-0', 'lookalike'], evictPods: true } }),
      statuses,
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
    await drive(new MigrationRunner(deps), m, statuses);
    expect(evicted).to.deep.equal(['a']);
    const forced = statuses.at(-1)?.conditions?.find((c) => c.type === 'ForcedRelease');
    expect(forced?.status).to.equal('True');
    expect(forced?.message).to.contain('3 sessions released').and.to.contain('not workers of pool p: db-0, lookalike');
    expect(store.ownersOf(POOL_ID).get('a') ?? 0).to.equal(0);
  });

  it('a Running migration resumes the journal named in its status and never re-plans', async () => {
    const { store, journal, deps, statuses, events } = setup(['a', 'b']);
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
    await drive(crashing, m, statuses, abort.signal);
    journal.transition = origin;
    const running = statuses.at(-1)!;
    expect(running.phase).to.equal('Running');
    expect(store.ownersOf(POOL_ID).get('a')).to.equal(6);
    // Restart: the object as the apiserver has it.
    const planReads = store.calls.get('countByOwner') ?? 0;
    await drive(new MigrationRunner(deps), m, statuses);
    const last = statuses.at(-1)!;
    expect(last.phase, last.message).to.equal('Succeeded');
    expect(last.progress?.moved).to.equal(12);
    expect(store.ownersOf(POOL_ID).get('b')).to.equal(12);
    // Resumed from the journal: no new plan was made (planning reads the target loads).
    expect(store.calls.get('countByOwner') ?? 0).to.equal(planReads);
    expect(events).to.include('Normal/Resumed');
  });

  it('keepSourcePods keeps the emptied pod: not evicted', async () => {
    const kept = setup(['a', 'b']);
    kept.store.seed(POOL_ID, 'a', 5);
    await drive(
      new MigrationRunner(kept.deps),
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'], keepSourcePods: true } }),
      kept.statuses,
    );
    expect(kept.statuses.at(-1)?.phase).to.equal('Succeeded');
    expect(kept.evicted).to.deep.equal([]);
    expect(kept.store.workers.get(`${POOL_ID}/a`)?.draining).to.equal(true);
  });

  it('a disruption budget that keeps refusing the eviction fails the migration by its deadline, requeued meanwhile', async () => {
    const { store, deps, statuses } = setup(['a', 'b']);
    store.seed(POOL_ID, 'a', 2);
    let refusals = 0;
    deps.eviction = {
      createNamespacedPodEviction: async () => {
        refusals += 1;
        throw Object.assign(new Error('Cannot evict pod as it would violate the pod disruption budget.'), { code: 429 });
      },
    };
    deps.waitMs = 100;
    const m = migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'], evictPods: true }, deadlineSeconds: 2 });
    await drive(new MigrationRunner(deps), m, statuses);
    const last = statuses.at(-1)!;
    expect(last.phase).to.equal('Failed');
    expect(last.reason).to.equal('EvictionBlocked');
    expect(refusals).to.be.greaterThan(1);
    expect(store.ownersOf(POOL_ID).get('a') ?? 0).to.equal(0);
  });

  it('live handover first: moved and idle answers are taken, an unreachable source falls back to the store-level move', async () => {
    const { store, deps, statuses } = setup(['a', 'b', 'c']);
    store.seed(POOL_ID, 'a', 6);
    const requests: { source: string; migration: string; moves: number }[] = [];
    deps.handover = () => async (request) => {
      requests.push({ source: request.source, migration: request.migration, moves: request.moves.length });
      // Asked again for the busy ones: they failed (nothing changed), so the store-level move takes them.
      if (requests.length > 1) return request.moves.map((mv) => ({ sessionId: mv.sessionId, outcome: 'failed' as const }));
      // The worker moves the first session itself (the store names the target with a new epoch), finds the second idle.
      const [first, second] = request.moves;
      const record = (await store.get(first!.sessionId, { pool: POOL_ID }))!;
      const [outcome] = await store.moveOwners(POOL_ID, [
        { sessionId: first!.sessionId, fromOwner: 'a', fromEpoch: record.epoch, toOwner: first!.target },
      ]);
      const idle = (await store.get(second!.sessionId, { pool: POOL_ID }))!;
      await store.moveOwners(POOL_ID, [{ sessionId: second!.sessionId, fromOwner: 'a', fromEpoch: idle.epoch, toOwner: null }]);
      return [
        { sessionId: first!.sessionId, outcome: 'moved', epoch: outcome!.status === 'moved' ? outcome!.epoch : -1 },
        { sessionId: second!.sessionId, outcome: 'idle' },
        ...request.moves.slice(2).map((mv) => ({ sessionId: mv.sessionId, outcome: 'busy' as const })),
      ];
    };
    await drive(
      new MigrationRunner(deps),
      migration({ poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'] }, batchSize: 10, deadlineSeconds: 3600 }),
      statuses,
    );
    expect(requests).to.deep.equal([
      { source: 'a', migration: 'uid-1', moves: 6 },
      { source: 'a', migration: 'uid-1', moves: 4 },
    ]);
    const last = statuses.at(-1)!;
    expect(last.phase, last.message).to.equal('Succeeded');
    // One handed over, one released idle, four busy then failed: moved at store level.
    expect(last.progress?.moved).to.equal(5);
    expect(store.ownersOf(POOL_ID).get('a') ?? 0).to.equal(0);
  });
});
