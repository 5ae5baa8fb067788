// SessionMigration end to end, on the local control plane with the real operator process,
// worker pods run by the LocalKubelet and live traffic: each kind of migration moves sessions
// while clients keep incrementing them, and afterwards no session is lost, no acknowledged
// increment is lost, no session has two owners, and no client request failed (retries allowed).
import { expect } from 'chai';
import { waitFor } from '../harness/processes.ts';
import { createMigration, createPool, getPool, poolPods, waitForPhase, waitForWorkers } from './support/migration-env.ts';
import { Traffic, ownersCount } from './support/traffic.ts';
import { migrationSuite } from './support/suite.ts';
import { expectNothingLost, log } from './support/assertions.ts';

const SESSIONS = 300;
const CLIENTS = 8;
const TOLERANCE = 0.1;
/** How long the spread must hold after a Rebalance (issue 14: at least two minutes). */
const STEADY_MS = 120_000;

describe('migration e2e: every kind of SessionMigration under live traffic', function () {
  this.timeout(180_000);
  const state = migrationSuite();

  it('Evacuate by pod: every session of the pod moves, under traffic', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, { replicas: 3, prefix: 'mig-pod' }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(SESSIONS, CLIENTS);
    const source = (await pool.store.listWorkers(pool.id)).map((w) => w.worker).sort()[0]!;
    const before = (await pool.store.listByOwner(pool.id, source)).length;
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    const name = await createMigration(env, pool, 'evac-pod', { type: 'Evacuate', evacuate: { pods: [source] }, batchSize: 50 });
    const m = await waitForPhase(env, pool.namespace, name, ['Succeeded', 'Failed', 'RolledBack']);
    log(
      `evacuated ${m.status?.progress?.moved} sessions of ${source} (${before} before) in ${Date.now() - started} ms (creation to Succeeded)`,
    );
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    expect(m.status?.plan?.totalSessions).to.be.at.least(before);
    expect(m.status?.journalKey).to.match(/:mig:/);
    expect(m.status?.startTime).to.be.a('string');
    expect(m.status?.completionTime).to.be.a('string');
    expect(m.status?.conditions?.find((c) => c.type === 'Succeeded')?.status).to.equal('True');
    await new Promise((r) => setTimeout(r, 500));
    const report = await expectNothingLost(pool, traffic);
    expect(ownersCount(report).get(source) ?? 0, 'sessions left on the source').to.equal(0);
    expect((await pool.store.listByOwner(pool.id, source)).length).to.equal(0);
    // The emptied pod is evicted (no keepSourcePods) and the Deployment replaces it.
    expect(
      m.status?.conditions?.find((c) => c.type === 'PodsEvicted'),
      'PodsEvicted condition',
    ).to.include({
      status: 'True',
      reason: 'PodsEvicted',
    });
    await waitFor(
      `evacuated pod ${source} gone`,
      async () => ((await poolPods(env, pool)).some((p) => p.metadata?.name === source) ? undefined : true),
      60_000,
      250,
    );
    const workers = await waitForWorkers(env, pool, 3);
    expect(workers, 'a replacement worker, not the evacuated one').to.not.include(source);
    log(`${source} evicted after its evacuation; workers now ${workers.join(', ')}`);
  });

  it('Evacuate by node: the pool pods of one node are emptied, under traffic', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, { replicas: 4, prefix: 'mig-node' }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(SESSIONS, CLIENTS);
    const pods = await poolPods(env, pool);
    const byNode = new Map<string, string[]>();
    for (const p of pods) byNode.set(p.spec?.nodeName ?? '', [...(byNode.get(p.spec?.nodeName ?? '') ?? []), p.metadata?.name ?? '']);
    // A node with pool pods, leaving at least one pool pod elsewhere.
    const [node, onNode] = [...byNode.entries()].find(([, names]) => names.length < pods.length)!;
    const name = await createMigration(env, pool, 'evac-node', {
      type: 'Evacuate',
      evacuate: { nodeName: node, keepSourcePods: true },
      batchSize: 100,
    });
    const m = await waitForPhase(env, pool.namespace, name, ['Succeeded', 'Failed', 'RolledBack']);
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    log(`node ${node}: ${onNode.join(', ')} evacuated, ${m.status?.progress?.moved} sessions moved`);
    const report = await expectNothingLost(pool, traffic);
    for (const podName of onNode) expect(ownersCount(report).get(podName) ?? 0, `sessions left on ${podName}`).to.equal(0);
    // keepSourcePods: the emptied pods are still there, not being deleted, and nothing says they were removed.
    const kept = (await poolPods(env, pool)).filter((p) => onNode.includes(p.metadata?.name ?? ''));
    expect(kept.map((p) => p.metadata?.name).sort()).to.deep.equal([...onNode].sort());
    expect(kept.every((p) => !p.metadata?.deletionTimestamp)).to.equal(true);
    expect(m.status?.conditions?.some((c) => c.type === 'PodsEvicted')).to.equal(false);
  });

  it('Migrate: named sessions move to the named worker, under traffic', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, { replicas: 3, prefix: 'mig-migrate' }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(SESSIONS, CLIENTS);
    const target = (await pool.store.listWorkers(pool.id)).map((w) => w.worker).sort()[2]!;
    const chosen = traffic.stats.sessions.slice(0, 120);
    const name = await createMigration(env, pool, 'migrate', {
      type: 'Migrate',
      migrate: { sessionIds: chosen, targetWorker: target },
      batchSize: 40,
    });
    const m = await waitForPhase(env, pool.namespace, name, ['Succeeded', 'Failed', 'RolledBack']);
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    const report = await expectNothingLost(pool, traffic);
    const onTarget = chosen.filter((id) => report.owners.get(id) === target).length;
    log(`migrate: ${m.status?.progress?.moved} moved, ${onTarget}/${chosen.length} on ${target}`);
    // A session may have been released by a lease lapse meanwhile; none may be on another worker.
    for (const id of chosen) expect([target, null]).to.include(report.owners.get(id));
  });

  it('Rebalance: sessions spread evenly over the workers, under traffic, and stay spread for two minutes', async function () {
    this.timeout(STEADY_MS + 180_000);
    const { env } = state;
    const pool = (state.pool = await createPool(env, { replicas: 3, prefix: 'mig-rebal' }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(SESSIONS, CLIENTS);
    // Pile everything on one worker first, then rebalance.
    const workers = (await pool.store.listWorkers(pool.id)).map((w) => w.worker).sort();
    const pile = await createMigration(env, pool, 'pile', {
      type: 'Migrate',
      migrate: { sessionIds: traffic.stats.sessions, targetWorker: workers[0]! },
      batchSize: 100,
    });
    expect((await waitForPhase(env, pool.namespace, pile, ['Succeeded', 'Failed', 'RolledBack'])).status?.phase).to.equal('Succeeded');
    const name = await createMigration(env, pool, 'rebalance', {
      type: 'Rebalance',
      rebalance: { maxMovesPerRound: 1000, tolerancePercent: TOLERANCE * 100 },
      batchSize: 50,
    });
    const m = await waitForPhase(env, pool.namespace, name, ['Succeeded', 'Failed', 'RolledBack']);
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    const counts = await pool.store.countByOwner(pool.id);
    log(`rebalance: moved ${m.status?.progress?.moved}; per worker ${workers.map((w) => `${w}=${counts.get(w) ?? 0}`).join(' ')}`);
    expect(m.status?.progress?.moved).to.be.greaterThan(SESSIONS / 3);
    const owned = workers.map((w) => counts.get(w) ?? 0);
    expect(Math.max(...owned) - Math.min(...owned)).to.be.at.most(Math.ceil(SESSIONS * 0.25));
    // The spread is real and lasting: under steady traffic each session stays with its activation, so the
    // pool's status.sessionsPerWorker (what scale-down and the next Rebalance read) stays within the
    // rebalance tolerance, with every session owned, for two minutes.
    const ideal = SESSIONS / workers.length;
    const [low, high] = [Math.ceil(ideal * (1 - TOLERANCE)), Math.floor(ideal * (1 + TOLERANCE))];
    const samples: string[] = [];
    for (const until = Date.now() + STEADY_MS; Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 5_000));
      const perWorker = (await getPool(env, pool))?.status?.sessionsPerWorker;
      const shown = new Map((perWorker?.workers ?? []).map((w) => [w.worker, w.sessions]));
      samples.push(workers.map((w) => shown.get(w) ?? 0).join('/'));
      for (const w of workers) expect(shown.get(w), `${w} after ${samples.length} samples: ${samples.join(' ')}`).to.be.within(low, high);
      expect(
        [...shown.values()].reduce((a, b) => a + b, 0),
        'sessions owned',
      ).to.equal(SESSIONS);
    }
    log(`sessionsPerWorker for ${STEADY_MS / 1000} s after the rebalance (within ${low}..${high}): ${samples.join(' ')}`);
    await expectNothingLost(pool, traffic);
  });

  it('dry run: the plan is written and nothing moves', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, { replicas: 3, prefix: 'mig-dry' }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(SESSIONS, CLIENTS);
    const source = (await pool.store.listWorkers(pool.id)).map((w) => w.worker).sort()[1]!;
    const before = await pool.store.listByOwner(pool.id, source);
    const name = await createMigration(env, pool, 'dry', { type: 'Evacuate', evacuate: { pods: [source] }, dryRun: true });
    const m = await waitForPhase(env, pool.namespace, name, ['Succeeded', 'Failed', 'RolledBack']);
    expect(m.status?.phase).to.equal('Succeeded');
    expect(m.status?.reason).to.equal('DryRun');
    expect(m.status?.progress?.moved).to.equal(0);
    expect(m.status?.journalKey).to.equal(undefined);
    const after = await pool.store.listByOwner(pool.id, source);
    // Nothing left the source. Under live traffic it may have claimed a session meanwhile (a lease that
    // lapsed on a loaded machine), so the plan counts what it owned at the plan's moment: between the two.
    expect(after).to.include.members(before);
    expect(m.status?.plan?.totalSessions).to.be.within(before.length, after.length);
    expect((await pool.store.listWorkers(pool.id)).find((w) => w.worker === source)?.draining).to.equal(false);
    await expectNothingLost(pool, traffic);
  });
});
