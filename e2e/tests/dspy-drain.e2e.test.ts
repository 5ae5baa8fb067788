// The DSPy worker (examples/dspy-worker, DummyLM) as the handler container of a Centralized pool,
// under live traffic through `kubectl cordon` and `kubectl drain` of a node: sessions each define
// a program, then clients execute it repeatedly through any worker while the node's pods are
// evacuated and evicted. Afterwards no session is lost, and each keeps its program (the record
// define_program wrote, unchanged) and its whole history: one turn per acknowledged execute, in
// order, each with DummyLM's answer through DSPy; the program is still listed and runs again.
import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { WorkerClient } from '../../operator/worker/client.ts';
import { waitFor } from '../harness/processes.ts';
import {
  createPool,
  getMigration,
  kubectl,
  poolEndpoints,
  poolPods,
  waitForPhase,
  type MigrationEnv,
  type TestPool,
} from './support/migration-env.ts';
import { migrationSuite } from './support/suite.ts';
import { log } from './support/assertions.ts';

const SESSIONS = 24;
const CONCURRENCY = 6;
/** Bounds the traffic: each loop stops after this many executes even if the drain is slow. */
const MAX_EXECUTES_PER_LOOP = 400;

/** The DSPy worker's session data: {programs: {name: record}, history: [turn, ...]}. */
const sessionData = (record: { data: unknown } | undefined | null) => record?.data as { programs: unknown; history: Turn[] } | undefined;

/**
 * A connection reset after the request was sent (a keep-alive connection the stopping worker
 * closed as the request went out): the client cannot know whether the execute ran, and rightly
 * does not resend it. Such a turn may or may not be in the history; every other failure fails.
 */
const AMBIGUOUS = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']);

const podReady = (pod: V1Pod) => pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

interface Turn {
  program: string;
  inputs: { question: string };
  outputs: { answer: string };
}

/** Clients looping execute_program on the sessions' programs through any worker (with retries). */
class ProgramTraffic {
  readonly programs = new Map<string, string>(); // session id -> program name
  /** Questions of acknowledged executes, per session, in the order they were acknowledged. */
  readonly acked = new Map<string, string[]>();
  readonly failures: { id: string; question: string; code: string; message: string }[] = [];
  requests = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private refresher: NodeJS.Timeout | undefined;
  readonly client: WorkerClient;
  private readonly env: MigrationEnv;
  private readonly pool: TestPool;

  constructor(env: MigrationEnv, pool: TestPool, endpoints: string[]) {
    this.env = env;
    this.pool = pool;
    this.client = new WorkerClient({ endpoints, maxAttempts: 40, baseDelayMs: 20, maxDelayMs: 500, budgetMs: 60_000, timeoutMs: 30_000 });
  }

  /** Creates the sessions and defines one program in each. */
  async prepare(sessions: number): Promise<void> {
    for (let i = 0; i < sessions; i++) {
      const { id } = await this.client.createSession({});
      const name = `qa-${i}`;
      const defined = await this.client.execute<{ name: string; replaced: boolean }>(id, 'define_program', {
        name,
        signature: 'question -> answer',
        instructions: `Answer question ${i} in one word.`,
      });
      expect(defined.result).to.include({ name, replaced: false });
      this.programs.set(id, name);
      this.acked.set(id, []);
    }
  }

  start(concurrency: number): void {
    this.refresher = setInterval(() => {
      void poolEndpoints(this.env, this.pool).then(
        (list) => {
          if (list.length > 0) this.client.setEndpoints(list);
        },
        () => undefined,
      );
    }, 200);
    this.running = true;
    this.loops = Array.from({ length: concurrency }, (_, loop) => this.loop(loop));
  }

  private async loop(loop: number): Promise<void> {
    const ids = [...this.programs.keys()];
    for (let n = 0; this.running && n < MAX_EXECUTES_PER_LOOP; n++) {
      // Each loop keeps to its own sessions, so the executes of one session are sequential and
      // the order of its acknowledgements is the order of its history.
      const mine = ids.filter((_, i) => i % CONCURRENCY === loop);
      const id = mine[n % mine.length]!;
      const question = `loop ${loop} turn ${n}`;
      this.requests += 1;
      try {
        const { result } = await this.client.execute<{ outputs: { answer: string } }>(id, 'execute_program', {
          name: this.programs.get(id)!,
          inputs: { question },
        });
        expect(result.outputs.answer).to.equal(`${this.programs.get(id)} answer for: ${question}`);
        this.acked.get(id)!.push(question);
      } catch (error) {
        this.failures.push({
          id,
          question,
          code: (error as { code?: string }).code ?? 'ERROR',
          message: error instanceof Error ? error.message : String(error),
        });
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    clearInterval(this.refresher);
  }

  totalAcked(): number {
    return [...this.acked.values()].reduce((s, l) => s + l.length, 0);
  }
}

describe('DSPy worker e2e: live traffic through kubectl cordon + drain of a node', function () {
  this.timeout(300_000);
  let node: string | undefined;
  const state = migrationSuite({
    beforePoolDelete: async (env) => {
      if (node) await kubectl(env, ['uncordon', node]).catch(() => undefined);
      node = undefined;
    },
  });

  it('no session lost; every program and its history intact; the programs still run', async () => {
    const { env } = state;
    const pool = (state.pool = await createPool(env, {
      replicas: 4,
      prefix: 'dspy',
      maintenance: { evacuateOnCordon: true, evictAfterEvacuation: true, drainDeadlineSeconds: 120 },
      spec: {
        sessionMode: 'Centralized',
        handler: { image: 'spo-dspy-worker:e2e', env: [{ name: 'SPO_DSPY_LM', value: 'dummy' }], timeoutSeconds: 30 },
      },
    }));
    // DSPy's import is part of the handler's readiness: wait for every pod to be ready.
    const pods = await waitFor(
      'every pod ready with its DSPy handler',
      async () => {
        const list = await poolPods(env, pool);
        return list.length === 4 && list.every(podReady) ? list : undefined;
      },
      120_000,
      250,
    );
    expect(pods.every((p) => p.spec?.containers.map((c) => c.name).join(',') === 'worker,handler')).to.equal(true);
    const traffic = new ProgramTraffic(env, pool, await poolEndpoints(env, pool));
    state.traffic = traffic;
    await traffic.prepare(SESSIONS);
    const defined = new Map<string, unknown>();
    for (const id of traffic.programs.keys())
      defined.set(id, sessionData(await pool.store.get(id, { pool: pool.id, touch: false }))?.programs);
    traffic.start(CONCURRENCY);
    await waitFor(
      'executes acknowledged before the cordon',
      async () => (traffic.totalAcked() >= SESSIONS ? true : undefined),
      60_000,
      100,
    );

    const byNode = new Map<string, string[]>();
    for (const p of pods) byNode.set(p.spec?.nodeName ?? '', [...(byNode.get(p.spec?.nodeName ?? '') ?? []), p.metadata?.name ?? '']);
    const [chosen, onNode] = [...byNode.entries()]
      .sort((a, b) => b[1].length - a[1].length)
      .find(([, names]) => names.length < pods.length)!;
    node = chosen;
    const sessionsOnNode = new Set<string>();
    for (const podName of onNode) for (const id of await pool.store.listByOwner(pool.id, podName)) sessionsOnNode.add(id);
    log(`node ${node}: ${onNode.join(', ')} with ${sessionsOnNode.size} sessions; ${traffic.totalAcked()} executes acknowledged so far`);

    await kubectl(env, ['cordon', node]);
    const migrationName = `${pool.name}-drain-${node}`;
    await waitFor('the drain evacuation', () => getMigration(env, pool.namespace, migrationName), 30_000, 100);
    await kubectl(env, ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=150s'], 180_000);
    const m = await waitForPhase(env, pool.namespace, migrationName, ['Succeeded', 'Failed', 'RolledBack'], 60_000);
    expect(m.status?.phase, m.status?.message).to.equal('Succeeded');
    await waitFor(
      'replacement pods ready elsewhere',
      async () => {
        const list = (await poolPods(env, pool)).filter((p) => !p.metadata?.deletionTimestamp && podReady(p));
        return list.length >= 4 && list.every((p) => p.spec?.nodeName !== node) ? list : undefined;
      },
      120_000,
      250,
    );
    const ackedAtDrain = traffic.totalAcked();
    await traffic.stop();
    log(
      `traffic: ${traffic.requests} executes, ${traffic.totalAcked()} acknowledged (${ackedAtDrain} by the drain's end), ${traffic.failures.length} failed (${traffic.failures.map((f) => f.code).join(', ') || 'none'}); evacuation moved ${m.status?.progress?.moved}`,
    );
    const [ambiguous, failed] = [
      traffic.failures.filter((f) => AMBIGUOUS.has(f.code)),
      traffic.failures.filter((f) => !AMBIGUOUS.has(f.code)),
    ];
    expect(failed.slice(0, 5)).to.deep.equal([]);
    expect(ambiguous.length, 'connection resets by stopping workers').to.be.at.most(4);

    // Every session is there, owned by a worker off the drained node, with its program record as
    // define_program wrote it and one history turn per acknowledged execute, in order (plus, at
    // most once, the turn of an execute whose answer a connection reset lost).
    const historyLengths = new Map<string, number>();
    for (const [id, name] of traffic.programs) {
      const record = await pool.store.get(id, { pool: pool.id, touch: false });
      expect(record, `session ${id}`).to.not.equal(undefined);
      expect(onNode).to.not.include(record?.owner);
      const data = sessionData(record)!;
      expect(data.programs, `programs of ${id}`).to.deep.equal(defined.get(id));
      const unknown = new Set(ambiguous.filter((f) => f.id === id).map((f) => f.question));
      const stored = data.history.map((t) => t.inputs.question);
      expect(
        stored.filter((q) => !unknown.has(q)),
        `history of ${id}`,
      ).to.deep.equal(traffic.acked.get(id)!);
      for (const q of unknown) expect(stored.filter((s) => s === q).length, `turn "${q}" of ${id}`).to.be.at.most(1);
      historyLengths.set(id, stored.length);
      for (const turn of data.history)
        expect(turn).to.deep.equal({
          program: name,
          inputs: turn.inputs,
          outputs: { answer: `${name} answer for: ${turn.inputs.question}` },
        });
    }
    expect(traffic.totalAcked()).to.be.greaterThan(SESSIONS);

    // Through any worker now: the program is listed, the history length matches, a last execute works.
    for (const [id, name] of traffic.programs) {
      const listed = await traffic.client.execute<{ programs: { name: string }[]; historyLength: number }>(id, 'list_programs');
      expect(listed.result.programs.map((p) => p.name)).to.deep.equal([name]);
      expect(listed.result.historyLength).to.equal(historyLengths.get(id));
      const last = await traffic.client.execute<{ outputs: { answer: string } }>(id, 'execute_program', {
        name,
        inputs: { question: 'after the drain' },
      });
      expect(last.result.outputs.answer).to.equal(`${name} answer for: after the drain`);
      const history = await traffic.client.execute<{ history: Turn[] }>(id, 'get_history', { last: 1 });
      expect(history.result.history).to.deep.equal([
        { program: name, inputs: { question: 'after the drain' }, outputs: { answer: `${name} answer for: after the drain` } },
      ]);
    }
  });
});
