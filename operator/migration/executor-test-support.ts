// Shared setup of the executor's unit tests (executor.test.ts, executor-rollback.test.ts): a memory store
// seeded with one source worker's sessions, a memory journal and a fake clock, and the checks they share.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import type { ExecutorOptions, MigrationProgress } from './executor.ts';
import { planEvacuate, type Plan } from './planner.ts';
import { MemorySessionStore } from '../store/testing/memory-store.ts';
import { MemoryJournal } from './testing/memory-journal.ts';

export const POOL = 'pool-a';
export const silent = pino({ level: 'silent' });

export interface Setup {
  store: MemorySessionStore;
  journal: MemoryJournal;
  registry: Registry;
  source: string[];
  clock: { t: number };
  options: ExecutorOptions;
  progress: MigrationProgress[];
}

export function setup(sessions = 100, targets = ['w1', 'w2', 'w3']): Setup {
  const store = new MemorySessionStore();
  const journal = new MemoryJournal();
  const registry = new Registry();
  const clock = { t: 1_000_000 };
  journal.now = () => clock.t;
  store.addWorker(POOL, 'w0');
  for (const t of targets) store.addWorker(POOL, t);
  const source = store.seed(POOL, 'w0', sessions, 5);
  const progress: MigrationProgress[] = [];
  const options: ExecutorOptions = {
    store,
    journal,
    registry,
    logger: silent,
    batchSize: 10,
    graceMs: 50,
    retryDelayMs: 1,
    now: () => clock.t,
    sleep: async (ms) => {
      clock.t += ms;
    },
    onProgress: (_uid, p) => {
      progress.push(p);
    },
  };
  return { store, journal, registry, source, clock, options, progress };
}

export async function evacuationPlan(s: Setup): Promise<Plan> {
  const workers = await s.store.listWorkers(POOL);
  return planEvacuate({
    sources: new Map([['w0', await s.store.listByOwner(POOL, 'w0')]]),
    targets: workers.filter((w) => !w.draining && w.worker !== 'w0').map((w) => ({ name: w.worker })),
    targetLoads: await s.store.countByOwner(POOL),
  });
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string>, series?: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const value = metric?.values.find(
    (v) =>
      (series === undefined || (v as { metricName?: string }).metricName === series) &&
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value ?? 0;
}

export function expectNoMovingMarks(store: MemorySessionStore): void {
  expect([...store.sessions.values()].filter((s) => s.movingBy !== null).map((s) => s.id)).to.deep.equal([]);
}

export function expectAllOn(store: MemorySessionStore, ids: string[], owner: string | ((o: string | null) => boolean)): void {
  for (const id of ids) {
    const o = store.peek(id)!.owner;
    if (typeof owner === 'string') expect(o, id).to.equal(owner);
    else expect(owner(o), `${id} on ${o}`).to.equal(true);
  }
}
