// One activation per session under everything at once (issue 14, docs/activation.md): a pool whose
// handler container counts its own invocations per request outside the store
// (e2e/handlers/counting_handler.py) takes concurrent requests on the same sessions through every
// worker while, in turn, its sessions are piled on one worker and a Rebalance spreads them again with
// the operator's leader SIGKILLed mid-way (two leader-elected replicas), a node is cordoned and
// drained with the leader SIGKILLed again during its evacuation, and a worker's processes are SIGKILLed. Then, per request (support/execute-once-check.ts):
// - keyed (Idempotency-Key, the TypeScript client resending refusals and unknown outcomes): every one
//   acknowledged, invoked once, run again only when an invocation died with the SIGKILLed handler
//   before its write: invocations = acknowledged requests + those re-runs (shown apart);
// - plain (no key, one attempt): invoked once if acknowledged, at most once otherwise; nothing applied
//   when refused or not sent: invocations = acknowledged + the unknown outcomes that ran;
// and every session is there, answers a last request, holds every acknowledged write, none twice.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor, stopProcess, isRunning, type ProcessRecord } from '../harness/processes.ts';
import {
  createMigration,
  createPool,
  getMigration,
  kubectl,
  leaseHolder,
  poolEndpoints,
  poolPods,
  startElectedOperator,
  waitForPhase,
  waitForWorkers,
} from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';
import { log } from './support/assertions.ts';
import { CountedTraffic } from './support/counted-traffic.ts';
import { readInvocations } from './support/invocations.ts';
import { accountRequests } from './support/execute-once-check.ts';

const REPLICAS = 4;
const SESSIONS_PER_KIND = 8;
const LANES = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('chaos: execute once through a Rebalance, a leader kill, a drain and a worker kill', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'spo-chaos-'));
  const operators = new Map<string, ProcessRecord>();
  let cordoned: string | undefined;
  const state = migrationSuite({
    beforePoolDelete: async (env) => {
      if (cordoned) await kubectl(env, ['uncordon', cordoned]).catch(() => undefined);
    },
  });
  after(async function () {
    this.timeout(60_000);
    for (const record of operators.values()) await stopProcess(record, 10_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('handler invocations = acknowledged requests (+ unknown outcomes without a key); no session, no acknowledged write lost', async () => {
    const { env } = state;
    // Two leader-elected operator replicas instead of the suite's single one.
    if (env.operator) await stopProcess(env.operator, 10_000);
    env.operator = undefined;
    const leaseName = `spo-chaos-${Date.now().toString(36)}`;
    const startReplica = () => {
      const identity = `chaos-operator-${operators.size + 1}`;
      operators.set(identity, startElectedOperator(env, identity, leaseName));
    };
    /** SIGKILL of the leader; a new replica starts (as its Deployment would) and a standby takes over. */
    const killLeader = async () => {
      const leader = await waitFor('an operator leader', () => leaseHolder(env, leaseName), 60_000, 200);
      process.kill(operators.get(leader)!.pid, 'SIGKILL');
      startReplica();
      const next = await waitFor(
        'a new operator leader',
        async () => {
          const holder = await leaseHolder(env, leaseName);
          return holder && holder !== leader ? holder : undefined;
        },
        60_000,
        200,
      );
      return { leader, next };
    };
    startReplica();
    startReplica();
    await waitFor('an operator leader', () => leaseHolder(env, leaseName), 60_000, 200);

    const countFile = path.join(dir, 'invocations.log');
    const pool = (state.pool = await createPool(env, {
      replicas: REPLICAS,
      prefix: 'chaos',
      maintenance: { evacuateOnCordon: true, evictAfterEvacuation: true, drainDeadlineSeconds: 120 },
      spec: { handler: { image: 'spo-counting-handler:e2e', timeoutSeconds: 10, env: [{ name: 'SPO_COUNT_FILE', value: countFile }] } },
    }));
    const endpoints = await poolEndpoints(env, pool);
    for (const e of endpoints)
      await waitFor(`${e} ready`, async () => (await fetch(`http://${e}/readyz`)).status === 200 || undefined, 60_000, 250);

    const traffic = new CountedTraffic(env, pool, { lanes: LANES, perLaneMax: 1500, pauseMs: 100 });
    state.traffic = traffic;
    const client = await traffic.connect();
    const create = async () => (await client.createSession({})).id;
    const keyed = await Promise.all(Array.from({ length: SESSIONS_PER_KIND }, create));
    const plain = await Promise.all(Array.from({ length: SESSIONS_PER_KIND }, create));
    const all = [...keyed, ...plain];
    traffic.start(keyed, plain);

    // Phases: the request index and invocation count where each began, for the per-event figures.
    const phases: { name: string; from: number; invocations: number }[] = [];
    const phase = (name: string) => phases.push({ name, from: traffic.requests.length, invocations: readInvocations(countFile).total });
    phase('warm-up');
    await sleep(3_000);

    // 1. Pile every session's activation on one worker, then a Rebalance, the leader SIGKILLed during it.
    phase('pile + rebalance + leader kill');
    const workers = (await pool.store.listWorkers(pool.id)).map((w) => w.worker).sort();
    const pile = await createMigration(env, pool, 'pile', { type: 'Migrate', migrate: { sessionIds: all, targetWorker: workers[0]! } });
    expect((await waitForPhase(env, pool.namespace, pile, ['Succeeded', 'Failed', 'RolledBack'])).status?.phase).to.equal('Succeeded');
    const rebalance = await createMigration(env, pool, 'rebalance', {
      type: 'Rebalance',
      rebalance: { maxMovesPerRound: 100, tolerancePercent: 10 },
      batchSize: 1,
    });
    // The leader dies as soon as it took the Rebalance up (planning or moving); the standby finishes it.
    const atKill = await waitForPhase(env, pool.namespace, rebalance, ['Planning', 'Running', 'Succeeded', 'Failed', 'RolledBack'], 60_000);
    const first = await killLeader();
    log(
      `SIGKILLed operator leader ${first.leader} (Rebalance ${atKill.status?.phase}, moved ${atKill.status?.progress?.moved ?? 0}); ${first.next} leads`,
    );
    const rebalanced = await waitForPhase(env, pool.namespace, rebalance, ['Succeeded', 'Failed', 'RolledBack'], 150_000);
    expect(rebalanced.status?.phase, rebalanced.status?.message).to.equal('Succeeded');
    log(
      `rebalance: moved ${rebalanced.status?.progress?.moved}; per worker ${JSON.stringify(Object.fromEntries(await pool.store.countByOwner(pool.id)))}`,
    );
    expect(rebalanced.status?.progress?.moved, 'sessions the Rebalance moved').to.be.greaterThan(0);

    // 2. Cordon and drain a node holding some (not all) of the pool's pods.
    phase('cordon + drain + leader kill');
    const byNode = new Map<string, string[]>();
    for (const p of await poolPods(env, pool))
      byNode.set(p.spec?.nodeName ?? '', [...(byNode.get(p.spec?.nodeName ?? '') ?? []), p.metadata?.name ?? '']);
    const [node, onNode] = [...byNode.entries()].sort((a, b) => b[1].length - a[1].length).find(([, names]) => names.length < REPLICAS)!;
    cordoned = node;
    await kubectl(env, ['cordon', node]);
    const drainMigration = `${pool.name}-drain-${node}`;
    await waitFor('the drain evacuation', () => getMigration(env, pool.namespace, drainMigration), 30_000, 100);
    // The leader SIGKILLed again, while it evacuates the node.
    const second = await killLeader();
    log(`SIGKILLed operator leader ${second.leader} during the drain's evacuation; ${second.next} leads`);
    await kubectl(env, ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=120s'], 150_000);
    const drained = await waitForPhase(env, pool.namespace, drainMigration, ['Succeeded', 'Failed', 'RolledBack'], 60_000);
    expect(drained.status?.phase, drained.status?.message).to.equal('Succeeded');
    log(`drained ${node} (${onNode.join(', ')}): moved ${drained.status?.progress?.moved}`);
    await waitForWorkers(env, pool, REPLICAS, 90_000);

    // 3. SIGKILL of a worker pod's processes (worker and handler), one that holds activations.
    phase('worker kill');
    const counts = await pool.store.countByOwner(pool.id);
    const running = new Set([...env.kubelet.workers.values()].map((w) => w.pod));
    const live = (await pool.store.listWorkers(pool.id)).filter((w) => !w.draining && running.has(w.worker)).map((w) => w.worker);
    const victim = live.sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0))[0]!;
    const killedHandlers = new Set(
      [...env.kubelet.workers.values()]
        .filter((w) => w.pod === victim)
        .flatMap((w) => w.supervisor?.containers.map((c) => c.record.pid) ?? []),
    );
    env.kubelet.killWorker(victim);
    log(`SIGKILLed worker ${victim} holding ${counts.get(victim) ?? 0} activations`);
    await sleep(8_000); // past its registration's lapse: its sessions are taken over under traffic

    phase('end');
    await traffic.stop();
    // Every session is there and answers: one more keyed request each.
    const last = await Promise.all(all.map((id) => traffic.keyedPut(id, 'last')));
    expect(last.map((r) => r.outcome)).to.deep.equal(all.map(() => 'acked'));

    // Per request: what the client saw, what the handler ran, what the store holds.
    const invocations = readInvocations(countFile);
    const sessions = new Map<string, { data: Record<string, unknown>; version: number }>();
    for (const id of all) {
      const record = await pool.store.get(id, { pool: pool.id, touch: false });
      expect(record, `session ${id}`).to.not.equal(undefined);
      sessions.set(id, { data: (record?.data ?? {}) as Record<string, unknown>, version: record?.version ?? 0 });
    }
    const account = accountRequests(traffic, invocations, sessions, { killedHandlers, extraKeys: ['last'] });
    for (let i = 0; i < phases.length - 1; i++) {
      const t = traffic.tally(phases[i]!.from, phases[i + 1]!.from);
      log(
        `${phases[i]!.name}: invocations ${phases[i + 1]!.invocations - phases[i]!.invocations}; keyed ${JSON.stringify(t.keyed)}; plain ${JSON.stringify(t.plain)}`,
      );
    }
    const { keyed: k, plain: p } = account;
    log(
      `keyed: invocations ${k.invocations}, acknowledged ${k.acked}, unknown ${k.unknown}, re-runs of invocations lost with the killed handler ${k.rerunsAfterKill}`,
    );
    log(
      `plain: invocations ${p.invocations}, acknowledged ${p.acked}, unknown ${p.unknown} (ran ${p.unknownRan}), refused ${p.refused} (ran ${p.refusedRan}), not sent ${p.notSent}`,
    );
    const codes = new Map<string, number>();
    for (const r of traffic.requests) if (r.code) codes.set(`${r.outcome} ${r.code}`, (codes.get(`${r.outcome} ${r.code}`) ?? 0) + 1);
    log(`not acknowledged, by answer: ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(account.problems.slice(0, 10), `${account.problems.length} problems`).to.deep.equal([]);
    expect(k.invocations, 'keyed: invocations = acknowledged requests (+ re-runs of invocations killed mid-run)').to.equal(
      k.acked + k.rerunsAfterKill,
    );
    expect(p.invocations, 'plain: invocations = acknowledged + the unknown outcomes that ran').to.equal(
      p.acked + p.unknownRan + p.refusedRan,
    );
    expect(p.unknownRan).to.be.at.most(p.unknown);
    expect(k.acked + p.acked, 'acknowledged requests').to.be.greaterThan(100);
    expect(isRunning(operators.get(second.next)!), 'the last leader still runs').to.equal(true);
  });
});
