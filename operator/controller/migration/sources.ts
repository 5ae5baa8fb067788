// An Evacuate's source workers: which they are (from the spec or the status, so every step and
// every round after an operator restart sees the same ones), their draining flag in the worker
// registry, and how many sessions they still own (leftOnSources, shared with the engine's evacuate).
import type { V1Pod } from '@kubernetes/client-node';
import type { SessionMigration } from '../../api/index.ts';
import type { Logger } from '../../observability/logger.ts';
import type { SessionStore } from '../../store/types.ts';
import { resolveSources } from './resolve.ts';

/** The pods an Evacuate empties: the named ones, or (by node) the plan's sources, else the pool pods on the node now. */
export function evacuationSources(m: SessionMigration, pods: readonly V1Pod[]): string[] {
  const evacuate = m.spec.evacuate;
  if (evacuate?.pods) return [...new Set(evacuate.pods)].sort();
  const plan = m.status?.plan;
  if (plan && !plan.truncated && plan.moves && plan.moves.length > 0)
    return [...new Set(plan.moves.map((mv) => mv.from).filter((f) => f !== ''))].sort();
  return resolveSources(m.spec, pods);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function markDraining(
  store: SessionStore,
  pool: string,
  workers: readonly string[],
  draining: boolean,
  log: Logger,
): Promise<void> {
  const registered = new Set((await store.listWorkers(pool)).filter((w) => w.draining !== draining).map((w) => w.worker));
  for (const worker of workers) {
    if (!registered.has(worker)) continue;
    await store
      .setWorkerDraining(pool, worker, draining)
      .catch((error: unknown) => log.debug({ worker, err: String(error) }, 'draining flag not set'));
  }
}

/**
 * Marks the sources draining and checks it stuck: a worker's heartbeat that read its
 * registration just before the mark writes it back without it, so the mark is repeated until
 * two reads in a row show every registered source draining (about 3 s at most).
 */
export async function ensureDraining(
  store: SessionStore,
  pool: string,
  workers: readonly string[],
  log: Logger,
  pauseMs = 400,
): Promise<void> {
  const wanted = new Set(workers);
  let streak = 0;
  for (let attempt = 0; attempt < 8 && streak < 2; attempt++) {
    const stale = (await store.listWorkers(pool)).filter((w) => wanted.has(w.worker) && !w.draining).map((w) => w.worker);
    if (stale.length === 0) streak += 1;
    else {
      streak = 0;
      await markDraining(store, pool, stale, true, log);
    }
    await sleep(pauseMs);
  }
}
