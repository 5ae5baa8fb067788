// The session-mode switch through the operator under traffic (docs/activation.md "WorkerLocal",
// docs/worker.md "Session modes"): a pool goes Centralized -> Dual -> WorkerLocal -> Dual ->
// Centralized through spec.sessionMode while clients increment counters on its sessions through
// random workers. At each step the operator switches the live workers with the admin token, then the
// Deployment rolls them onto new pods under new names; sessions are created at every step. Once each
// step settles, every session is read through a worker picked at random, once, without a retry: the
// workers find each session wherever it lives. Client requests that failed after their retries may
// only be retryable refusals; at the end every session's counter equals its acknowledged increments.
import { expect } from 'chai';
import { AppsV1Api } from '@kubernetes/client-node';
import { deploymentName } from '../../operator/controller/pool/names.ts';
import { RETRY_ELSEWHERE_CODES } from '../../operator/worker/errors.ts';
import { waitFor } from '../harness/processes.ts';
import { log } from './support/assertions.ts';
import {
  createPool,
  patchPoolSpec,
  poolEndpoints,
  poolPods,
  waitForWorkers,
  type MigrationEnv,
  type TestPool,
} from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';
import { checkInvariants, Traffic } from './support/traffic.ts';

const REPLICAS = 3;
const STEPS = ['Dual', 'WorkerLocal', 'Dual', 'Centralized'] as const;
type Mode = 'Centralized' | (typeof STEPS)[number];

/** The step settled: the Deployment rolled out, no old pod is left, and every worker runs `mode`. */
async function waitSettled(env: MigrationEnv, pool: TestPool, mode: Mode, token: string): Promise<string[]> {
  const apps = env.kc.makeApiClient(AppsV1Api);
  return waitFor(
    `pool ${pool.name} settled in ${mode}`,
    async () => {
      const d = await apps.readNamespacedDeployment({ name: deploymentName(pool.name), namespace: pool.namespace }).catch(() => undefined);
      const modeEnv = d?.spec?.template.spec?.containers.flatMap((c) => c.env ?? []).find((e) => e.name === 'SPO_SESSION_MODE');
      const s = d?.status;
      if (modeEnv?.value !== mode || !s || (s.observedGeneration ?? 0) < (d.metadata?.generation ?? 1)) return undefined;
      if (s.updatedReplicas !== REPLICAS || s.readyReplicas !== REPLICAS || (s.replicas ?? 0) !== REPLICAS) return undefined;
      if ((await poolPods(env, pool)).length !== REPLICAS) return undefined;
      await waitForWorkers(env, pool, REPLICAS, 5_000);
      const endpoints = await poolEndpoints(env, pool);
      if (endpoints.length !== REPLICAS) return undefined;
      const modes = await Promise.all(
        endpoints.map((e) =>
          fetch(`http://${e}/admin/mode`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) })
            .then((r) => r.json() as Promise<{ mode?: string }>)
            .catch(() => ({ mode: undefined })),
        ),
      );
      return modes.every((m) => m.mode === mode) ? endpoints : undefined;
    },
    150_000,
    500,
  );
}

/** One plain GET per session through a worker picked at random: the sessions that did not answer 200. */
async function unreachable(endpoints: string[], ids: string[]): Promise<string[]> {
  const missed: string[] = [];
  for (let i = 0; i < ids.length; i += 20) {
    const answers = await Promise.all(
      ids.slice(i, i + 20).map(async (id) => {
        const endpoint = endpoints[Math.floor(Math.random() * endpoints.length)]!;
        const r = await fetch(`http://${endpoint}/v1/sessions/${id}`, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
        return r?.status === 200 ? undefined : `${id} via ${endpoint}: ${r ? `${r.status} ${await r.text()}` : 'no answer'}`;
      }),
    );
    for (const a of answers) if (a) missed.push(a);
  }
  return missed;
}

describe('session modes switched through the operator under traffic (end to end)', function () {
  this.timeout(900_000);
  const suite = migrationSuite();

  it('keeps every session reachable through Centralized -> Dual -> WorkerLocal -> Dual -> Centralized via spec.sessionMode', async () => {
    const { env } = suite;
    const pool = await createPool(env, { replicas: REPLICAS, prefix: 'modes' });
    suite.pool = pool;
    const secret = await env.core.readNamespacedSecret({ name: `${pool.name}-admin-token`, namespace: pool.namespace });
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');

    const traffic = new Traffic(env, pool);
    suite.traffic = traffic;
    await traffic.start(30, 6);
    const started = await poolEndpoints(env, pool);
    expect(await unreachable(started, traffic.stats.sessions), 'unreachable in Centralized').to.deep.equal([]);

    let previousPods = new Set((await poolPods(env, pool)).map((p) => p.metadata?.name ?? ''));
    for (const mode of STEPS) {
      const before = traffic.totalAcked();
      await patchPoolSpec(env, pool, { sessionMode: mode });
      const endpoints = await waitSettled(env, pool, mode, token);
      // The Deployment rolled: the pods now serving are new ones.
      const pods = new Set((await poolPods(env, pool)).map((p) => p.metadata?.name ?? ''));
      const kept = [...pods].filter((p) => previousPods.has(p));
      previousPods = pods;
      // Sessions created in this mode, then every session read once through a random worker.
      await traffic.addSessions(10);
      const missed = await unreachable(endpoints, traffic.stats.sessions);
      log(
        `${mode}: ${traffic.stats.sessions.length} sessions, ${missed.length} unreachable, pods kept from the last step ${kept.length}, ` +
          `${traffic.totalAcked() - before} increments acknowledged during the step, ${traffic.stats.failures.length} failed so far`,
      );
      expect(missed, `sessions unreachable after the switch to ${mode}`).to.deep.equal([]);
      expect(kept, `the switch to ${mode} rolled the pods`).to.deep.equal([]);
    }

    // Traffic ran through every step; a request that failed after its retries was a retryable refusal only.
    const stats = await traffic.stop();
    suite.traffic = undefined;
    const notRetryable = stats.failures.filter((f) => !RETRY_ELSEWHERE_CODES.has(f.code));
    log(`traffic: ${stats.requests} requests, ${traffic.totalAcked()} acknowledged, ${stats.failures.length} failed after retries`);
    expect(notRetryable.slice(0, 5), 'failures that are not retryable refusals').to.deep.equal([]);
    expect(stats.failures.length, 'failed requests').to.be.at.most(Math.ceil(stats.requests / 100));
    expect(traffic.totalAcked(), 'acknowledged increments').to.be.greaterThan(0);

    // None lost: every session in the store (Centralized again), its counter its acknowledged increments.
    const report = await checkInvariants(pool, stats);
    expect(report.lost, 'sessions lost').to.deep.equal([]);
    expect(report.twoOwners, 'sessions with two owners').to.deep.equal([]);
    const wrong: string[] = [];
    for (const id of stats.sessions) {
      const record = await pool.store.get(id, { pool: pool.id, touch: false });
      const n = Number((record?.data as { vars?: { n?: number } } | undefined)?.vars?.n ?? 0);
      if (n !== stats.acked.get(id)) wrong.push(`${id}: counter ${n}, acknowledged ${stats.acked.get(id)}`);
    }
    expect(wrong, 'counters that differ from their acknowledged increments').to.deep.equal([]);
  });
});
