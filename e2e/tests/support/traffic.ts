// Live traffic for the move tests and the invariant checks over it: clients looping `incr`
// on many sessions through any worker (retries allowed), counting acknowledged increments, then
// every session read back: none lost, no acknowledged write lost, no session with two owners.
import { WorkerClient } from '../../../operator/worker/client.ts';
import { poolEndpoints, type MigrationEnv, type TestPool } from './migration-env.ts';

export interface TrafficStats {
  sessions: string[];
  /** Acknowledged increments per session. */
  acked: Map<string, number>;
  requests: number;
  failures: { code: string; message: string }[];
  /** Longest single request (retries included), ms. */
  maxLatencyMs: number;
}

/**
 * Keeps a client's endpoints on the pool's live, registered workers (as a Service would), every
 * 200 ms, leaving out `excluded`; clear the returned timer to stop.
 */
export function followEndpoints(
  env: MigrationEnv,
  pool: TestPool,
  client: Pick<WorkerClient, 'setEndpoints'>,
  excluded: ReadonlySet<string> = new Set(),
): NodeJS.Timeout {
  return setInterval(() => {
    void poolEndpoints(env, pool).then(
      (all) => {
        const list = all.filter((e) => !excluded.has(e));
        if (list.length > 0) client.setEndpoints(list);
      },
      () => undefined,
    );
  }, 200);
}

/** Clients looping `incr` on many sessions through any worker of the pool, with retries. */
export class Traffic {
  readonly stats: TrafficStats = { sessions: [], acked: new Map(), requests: 0, failures: [], maxLatencyMs: 0 };
  private running = false;
  private loops: Promise<void>[] = [];
  private refresher: NodeJS.Timeout | undefined;
  private readonly env: MigrationEnv;
  private readonly pool: TestPool;
  private client: WorkerClient | undefined;
  /** Endpoints the clients no longer use (a worker about to be killed: a Service stops routing to it). */
  readonly excluded = new Set<string>();

  constructor(env: MigrationEnv, pool: TestPool) {
    this.env = env;
    this.pool = pool;
  }

  /** Creates `sessions` sessions (spread over the workers), then starts `concurrency` loops. */
  async start(sessions: number, concurrency: number): Promise<void> {
    const endpoints = await poolEndpoints(this.env, this.pool);
    this.client = new WorkerClient({ endpoints, maxAttempts: 40, baseDelayMs: 20, maxDelayMs: 500, budgetMs: 60_000, timeoutMs: 10_000 });
    for (let i = 0; i < sessions; i += 50) {
      const made = await Promise.all(
        Array.from({ length: Math.min(50, sessions - i) }, () => this.client!.createSession({ vars: { n: 0 } })),
      );
      for (const s of made) {
        this.stats.sessions.push(s.id);
        this.stats.acked.set(s.id, 0);
      }
    }
    this.refresher = followEndpoints(this.env, this.pool, this.client, this.excluded);
    this.running = true;
    this.loops = Array.from({ length: concurrency }, () => this.loop());
  }

  /** Creates `count` more sessions while the traffic runs; the loops pick them from now on. */
  async addSessions(count: number): Promise<string[]> {
    if (!this.client) throw new Error('start the traffic first');
    const made = await Promise.all(Array.from({ length: count }, () => this.client!.createSession({ vars: { n: 0 } })));
    for (const s of made) {
      this.stats.acked.set(s.id, 0);
      this.stats.sessions.push(s.id);
    }
    return made.map((s) => s.id);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const id = this.stats.sessions[Math.floor(Math.random() * this.stats.sessions.length)]!;
      const started = Date.now();
      this.stats.requests += 1;
      try {
        await this.client!.execute(id, 'incr', { key: 'n' });
        this.stats.acked.set(id, (this.stats.acked.get(id) ?? 0) + 1);
      } catch (error) {
        this.stats.failures.push({
          code: (error as { code?: string }).code ?? 'ERROR',
          message: error instanceof Error ? error.message : String(error),
        });
      }
      this.stats.maxLatencyMs = Math.max(this.stats.maxLatencyMs, Date.now() - started);
    }
  }

  async stop(): Promise<TrafficStats> {
    this.running = false;
    await Promise.all(this.loops);
    clearInterval(this.refresher);
    return this.stats;
  }

  /** Stops sending to a worker (by pod name) and waits for its requests in flight to end. */
  async exclude(podName: string): Promise<void> {
    for (const w of this.env.kubelet.workers.values()) if (w.pod === podName) this.excluded.add(w.endpoint);
    const list = (await poolEndpoints(this.env, this.pool)).filter((e) => !this.excluded.has(e));
    if (list.length > 0) this.client?.setEndpoints(list);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
  }

  totalAcked(): number {
    return [...this.stats.acked.values()].reduce((s, n) => s + n, 0);
  }
}

export interface InvariantReport {
  sessions: number;
  lost: string[];
  /** Sessions whose counter is below its acknowledged increments. */
  lostWrites: { id: string; acked: number; stored: number }[];
  /** Sessions named by two owners' indexes. */
  twoOwners: string[];
  /** Owner per session at the end. */
  owners: Map<string, string | null>;
}

/** Reads every session back and checks the invariants. */
export async function checkInvariants(pool: TestPool, stats: TrafficStats): Promise<InvariantReport> {
  const report: InvariantReport = { sessions: stats.sessions.length, lost: [], lostWrites: [], twoOwners: [], owners: new Map() };
  for (const id of stats.sessions) {
    const record = await pool.store.get(id, { pool: pool.id, touch: false });
    if (!record) {
      report.lost.push(id);
      continue;
    }
    report.owners.set(id, record.owner);
    const stored = Number((record.data as { vars?: { n?: number } }).vars?.n ?? 0);
    const acked = stats.acked.get(id) ?? 0;
    if (stored < acked) report.lostWrites.push({ id, acked, stored });
  }
  // Owner indexes: a session may appear under one owner at most, and only under its owner.
  const owners = new Set<string>([...(await pool.store.countByOwner(pool.id)).keys()].filter((o) => o !== ''));
  for (const w of await pool.store.listWorkers(pool.id)) owners.add(w.worker);
  for (const owner of report.owners.values()) if (owner) owners.add(owner);
  const seen = new Map<string, string>();
  const mine = new Set(stats.sessions);
  for (const owner of owners) {
    for (const id of await pool.store.listByOwner(pool.id, owner)) {
      if (!mine.has(id)) continue;
      const actual = report.owners.get(id);
      if (actual !== owner) continue; // a stale index entry the sweep removes: not an owner
      const other = seen.get(id);
      if (other && other !== owner) report.twoOwners.push(id);
      seen.set(id, owner);
    }
  }
  return report;
}

/** Sessions each worker owns (from the records). */
export function ownersCount(report: InvariantReport): Map<string, number> {
  const counts = new Map<string, number>();
  for (const owner of report.owners.values()) counts.set(owner ?? '', (counts.get(owner ?? '') ?? 0) + 1);
  return counts;
}
