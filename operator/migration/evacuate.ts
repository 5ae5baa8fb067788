// Evacuation for scale-down and node drain: every session of the given workers moves to the
// pool's other registered, non-draining workers. The sources are marked draining first (so no
// new session lands on them), and the evacuation repeats (a new round, a new journal) while
// sessions are still found on a source — a session created or claimed there during a round —
// up to maxRounds.
import { randomUUID } from 'node:crypto';
import type { SessionStore } from '../store/types.ts';
import { MigrationExecutor, type ExecutorOptions, type MigrationResult } from './executor.ts';
import type { OnFailure } from './journal.ts';
import { planEvacuate, type TargetWorker } from './planner.ts';
import { leftOnSources, listSourceSessions } from './source-sessions.ts';

export interface EvacuateOptions extends Omit<ExecutorOptions, 'store'> {
  /** Journal uid of the first round (later rounds append -r<n>); default a random uuid. */
  uid?: string;
  onFailure?: OnFailure;
  deadlineMs?: number;
  /** Mark the sources draining before planning (default true). */
  markDraining?: boolean;
  /** Rounds while sessions remain on the sources (default 3). */
  maxRounds?: number;
  /** Weights of targets (by worker name), default 1. */
  weights?: ReadonlyMap<string, number>;
  dryRun?: boolean;
}

export interface EvacuationResult {
  /** Succeeded only if every round did and no session is left on a source. */
  phase: MigrationResult['phase'];
  reason: string;
  rounds: MigrationResult[];
  /** Sessions still owned by a source at the end (0 on success). */
  left: number;
  moved: number;
}

export async function evacuateWorkers(
  store: SessionStore,
  pool: string,
  workers: readonly string[],
  options: EvacuateOptions,
): Promise<EvacuationResult> {
  const sources = new Set(workers);
  if (sources.size === 0) return { phase: 'Succeeded', reason: '', rounds: [], left: 0, moved: 0 };
  const executor = new MigrationExecutor({ ...options, store });
  const baseUid = options.uid ?? randomUUID();
  const maxRounds = options.maxRounds ?? 3;
  const started = (options.now ?? Date.now)();
  const deadlineMs = options.deadlineMs ?? 10 * 60_000;
  if (options.markDraining !== false && !options.dryRun) {
    const registered = new Set((await store.listWorkers(pool)).map((w) => w.worker));
    for (const worker of sources) if (registered.has(worker)) await store.setWorkerDraining(pool, worker, true);
  }
  const rounds: MigrationResult[] = [];
  let moved = 0;
  for (let round = 0; round < maxRounds; round++) {
    const bySource = await listSourceSessions(store, pool, [...sources]);
    const left = [...bySource.values()].reduce((s, ids) => s + ids.length, 0);
    if (left === 0) return { phase: 'Succeeded', reason: '', rounds, left: 0, moved };
    const registrations = await store.listWorkers(pool);
    const targets: TargetWorker[] = registrations
      .filter((w) => !w.draining && !sources.has(w.worker))
      .map((w) => ({ name: w.worker, weight: options.weights?.get(w.worker) ?? 1 }));
    const loads = await store.countByOwner(pool);
    const plan = planEvacuate({ sources: bySource, targets, targetLoads: loads });
    const remainingMs = Math.max(1, deadlineMs - ((options.now ?? Date.now)() - started));
    const result = await executor.run({
      uid: round === 0 ? baseUid : `${baseUid}-r${round}`,
      pool,
      plan,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      onFailure: options.onFailure ?? 'Rollback',
      deadlineMs: remainingMs,
      dryRun: options.dryRun ?? false,
    });
    rounds.push(result);
    moved += result.progress.moved;
    if (result.phase !== 'Succeeded' || options.dryRun) return { phase: result.phase, reason: result.reason, rounds, left, moved };
  }
  const left = await leftOnSources(store, pool, [...sources]);
  return left === 0
    ? { phase: 'Succeeded', reason: '', rounds, left, moved }
    : { phase: 'Failed', reason: 'SessionsLeft', rounds, left, moved };
}
