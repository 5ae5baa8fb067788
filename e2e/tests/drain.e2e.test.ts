// Maintenance drain end to end: `kubectl cordon` of a node with pool pods makes the operator
// evacuate them (one SessionMigration per pool and node) and evict them; `kubectl drain` of the
// node then completes within its timeout, with every session of those pods moved first and
// live traffic losing nothing. A drain that cannot finish (no other worker) reports why on the
// pool by its deadline, and dspex.io/force-drain=true on the node forces it.
import { expect } from 'chai';
import { waitFor } from '../harness/processes.ts';
import { createPool, getMigration, getPool, kubectl, poolPods, waitForPhase } from './support/migration-env.ts';
import { Traffic, checkInvariants } from './support/traffic.ts';
import { migrationSuite } from './support/suite.ts';
import { log } from './support/assertions.ts';

describe('drain e2e: kubectl cordon + drain of a node with pool pods', function () {
  this.timeout(180_000);
  // The node a test cordoned: undone after the traffic stopped and before the pool is deleted.
  let node: string | undefined;
  const state = migrationSuite({
    beforePoolDelete: async (env) => {
      if (node) {
        await kubectl(env, ['uncordon', node]).catch(() => undefined);
        await kubectl(env, ['annotate', 'node', node, 'dspex.io/force-drain-']).catch(() => undefined);
      }
      node = undefined;
    },
  });

  it('cordon, then drain: completes, every session of the node moved first, nothing lost', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, {
      replicas: 4,
      prefix: 'drain',
      maintenance: { evacuateOnCordon: true, evictAfterEvacuation: true, drainDeadlineSeconds: 120 },
    }));
    const traffic = (state.traffic = new Traffic(env, pool));
    await traffic.start(400, 8);
    const pods = await poolPods(env, pool);
    const byNode = new Map<string, string[]>();
    for (const p of pods) byNode.set(p.spec?.nodeName ?? '', [...(byNode.get(p.spec?.nodeName ?? '') ?? []), p.metadata?.name ?? '']);
    const [chosen, onNode] = [...byNode.entries()]
      .sort((a, b) => b[1].length - a[1].length)
      .find(([, names]) => names.length < pods.length)!;
    node = chosen;
    const sessionsOnNode = new Set<string>();
    for (const podName of onNode) for (const id of await pool.store.listByOwner(pool.id, podName)) sessionsOnNode.add(id);
    log(`node ${node}: ${onNode.join(', ')} with ${sessionsOnNode.size} sessions`);

    const started = Date.now();
    await kubectl(env, ['cordon', node]);
    const migrationName = `${pool.name}-drain-${node}`;
    await waitFor('the drain evacuation', () => getMigration(env, pool.namespace, migrationName), 30_000, 100);
    const drainStarted = Date.now();
    const output = await kubectl(env, ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=120s'], 150_000);
    log(`kubectl drain completed in ${Date.now() - drainStarted} ms (${Date.now() - started} ms after cordon)`);
    if (process.env.SPO_E2E_VERBOSE) log(output);
    const m = await waitForPhase(env, pool.namespace, migrationName, ['Succeeded', 'Failed', 'RolledBack'], 60_000);
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    expect(m.spec.evacuate?.nodeName).to.equal(node);
    expect(m.metadata.ownerReferences?.[0]?.name).to.equal(pool.name);
    log(`evacuation: moved ${m.status?.progress?.moved}, changed owner meanwhile ${m.status?.progress?.failed}; ${m.status?.message}`);
    // No pool pod is left on the node; the Deployment replaced them elsewhere.
    const after = await waitFor(
      'replacement pods elsewhere',
      async () => {
        const list = (await poolPods(env, pool)).filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running');
        return list.length >= 4 && list.every((p) => p.spec?.nodeName !== node) ? list : undefined;
      },
      60_000,
      250,
    );
    expect(after.some((p) => onNode.includes(p.metadata?.name ?? ''))).to.equal(false);
    const stats = await traffic.stop();
    const report = await checkInvariants(pool, stats);
    log(
      `traffic: ${stats.requests} requests, ${traffic.totalAcked()} acknowledged, ${stats.failures.length} failed, longest request ${stats.maxLatencyMs} ms`,
    );
    expect(report.lost).to.deep.equal([]);
    expect(report.lostWrites).to.deep.equal([]);
    expect(report.twoOwners).to.deep.equal([]);
    expect(stats.failures.slice(0, 5)).to.deep.equal([]);
    // Every session of the drained pods left them before the pods went: none is owned by one.
    for (const id of sessionsOnNode) expect(onNode).to.not.include(report.owners.get(id));
    // They left by the evacuation's moves, or by their draining worker handing its leases back (a worker
    // the store tells to drain releases its activations, worker.ts doDrain; when that comes before the
    // plan is made, the next request activates each session elsewhere): either way before the pod went,
    // as checked above. One run here saw 113 of 197 moved and the rest released, none lost.
    const moved = m.status?.progress?.moved ?? 0;
    log(`sessions of the node: ${sessionsOnNode.size}, moved by the evacuation: ${moved}`);
    expect(moved, 'sessions the evacuation moved').to.be.greaterThan(0);
  });

  it('a drain that cannot finish reports why on the pool by its deadline; force-drain releases and evicts', async () => {
    const { env } = state;
    // One worker, pinned to one node: evacuating it has no target.
    const pool = (state.pool = await createPool(env, {
      replicas: 1,
      prefix: 'drainblk',
      maintenance: { evacuateOnCordon: true, evictAfterEvacuation: true, drainDeadlineSeconds: 10 },
    }));
    const traffic1 = new Traffic(env, pool);
    await traffic1.start(50, 2);
    await new Promise((r) => setTimeout(r, 500));
    const stats = await traffic1.stop();
    const pods = await poolPods(env, pool);
    node = pods[0]!.spec!.nodeName!;
    const podName = pods[0]!.metadata!.name!;
    await kubectl(env, ['cordon', node]);
    const migrationName = `${pool.name}-drain-${node}`;
    const m = await waitForPhase(env, pool.namespace, migrationName, ['Succeeded', 'Failed', 'RolledBack'], 60_000);
    expect(m.status?.phase).to.equal('Failed');
    expect(m.status?.reason).to.equal('NoTargets');
    const blocked = await waitFor(
      'DrainBlocked on the pool',
      async () => {
        const p = await getPool(env, pool);
        return p?.status?.conditions?.find((c) => c.type === 'DrainBlocked' && c.status === 'True');
      },
      30_000,
      200,
    );
    log(`pool condition: ${blocked.reason}: ${blocked.message}`);
    expect(blocked.message).to.contain(podName).and.to.contain('dspex.io/force-drain=true');
    const events = await env.core.listNamespacedEvent({ namespace: pool.namespace, fieldSelector: `involvedObject.name=${pool.name}` });
    const eventsV1 = events.items.map((e) => `${e.reason}: ${e.message}`);
    log(`pool events: ${eventsV1.join(' | ').slice(0, 400)}`);
    expect(eventsV1.some((e) => e.startsWith('DrainBlocked'))).to.equal(true);

    // Force: the sessions are released to the store unowned and the pod is evicted.
    await kubectl(env, ['annotate', '--overwrite', 'node', node, 'dspex.io/force-drain=true']);
    await waitFor(
      'ForcedRelease on the migration',
      async () =>
        (await getMigration(env, pool.namespace, migrationName))?.status?.conditions?.find(
          (c) => c.type === 'ForcedRelease' && c.status === 'True',
        ),
      60_000,
      200,
    );
    await waitFor(
      'the pod evicted',
      async () =>
        (await poolPods(env, pool)).some((p) => p.metadata?.name === podName && !p.metadata?.deletionTimestamp) ? undefined : true,
      60_000,
      200,
    );
    const report = await checkInvariants(pool, stats);
    expect(report.lost).to.deep.equal([]);
    expect(report.lostWrites).to.deep.equal([]);
    for (const owner of report.owners.values()) expect(owner).to.not.equal(podName);
  });
});
