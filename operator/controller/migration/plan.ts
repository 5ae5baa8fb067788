// Builds the engine's plan for a SessionMigration from what the store and the pod cache say:
// the reads happen here, the decisions in resolve.ts and the engine's pure planner.
import type { V1Pod } from '@kubernetes/client-node';
import type { SessionMigration } from '../../api/index.ts';
import { planEvacuate, planMigrate, planRebalance, summarize, PlanError, type Plan, type PlannedMove } from '../../migration/planner.ts';
import type { SessionStore } from '../../store/types.ts';
import { rebalanceWorkers, resolveSources, resolveTargets, ResolveError } from './resolve.ts';
import { listSourceSessions } from '../../migration/source-sessions.ts';

export interface PlanContext {
  migration: SessionMigration;
  /** The pool identity in the store (`<namespace>/<name>`). */
  pool: string;
  store: SessionStore;
  pods: readonly V1Pod[];
  drainingNodes?: ReadonlySet<string>;
  /** Evacuate: the sources resolved when the migration started (kept across rounds). */
  sources?: readonly string[];
}

export interface BuiltPlan {
  plan: Plan;
  /** Evacuate: the source workers. */
  sources: string[];
}

const READ_CONCURRENCY = 256;

/** An empty plan (nothing to move). */
export function emptyPlan(kind: Plan['kind']): Plan {
  return { kind, moves: [], summary: summarize([]) };
}

export async function buildPlan(ctx: PlanContext): Promise<BuiltPlan> {
  const spec = ctx.migration.spec;
  const workers = await ctx.store.listWorkers(ctx.pool);
  if (spec.type === 'Evacuate') {
    const sources = ctx.sources ? [...ctx.sources] : resolveSources(spec, ctx.pods);
    if (sources.length === 0) return { plan: emptyPlan('Evacuate'), sources };
    const bySource = await listSourceSessions(ctx.store, ctx.pool, sources);
    const total = [...bySource.values()].reduce((s, ids) => s + ids.length, 0);
    if (total === 0) return { plan: emptyPlan('Evacuate'), sources };
    const targets = resolveTargets({
      pool: ctx.pool,
      poolName: ctx.migration.spec.poolRef.name,
      workers,
      pods: ctx.pods,
      sources,
      ...(ctx.drainingNodes ? { drainingNodes: ctx.drainingNodes } : {}),
    });
    if (targets.length === 0)
      throw new ResolveError(
        'NoTargets',
        `no ready, non-draining worker of pool ${ctx.pool} to take the ${total} sessions of ${sources.join(', ')}`,
      );
    const loads = await ctx.store.countByOwner(ctx.pool);
    return { plan: planEvacuate({ sources: bySource, targets, targetLoads: loads }), sources };
  }
  if (spec.type === 'Migrate') {
    const migrate = spec.migrate;
    if (!migrate) throw new ResolveError('InvalidSpec', 'spec.migrate is required for a Migrate migration');
    const targets = resolveTargets({ pool: ctx.pool, poolName: ctx.migration.spec.poolRef.name, workers, pods: ctx.pods, sources: [] });
    const sessions: { id: string; owner: string | null }[] = [];
    const ids = [...new Set(migrate.sessionIds)];
    for (let i = 0; i < ids.length; i += READ_CONCURRENCY) {
      const records = await Promise.all(
        ids.slice(i, i + READ_CONCURRENCY).map((id) => ctx.store.get(id, { pool: ctx.pool, touch: false }).catch(() => null)),
      );
      for (const record of records) if (record && record.pool === ctx.pool) sessions.push({ id: record.id, owner: record.owner });
    }
    try {
      return { plan: planMigrate({ sessions, target: migrate.targetWorker, targets }), sources: [] };
    } catch (error) {
      if (error instanceof PlanError && (error.code === 'UnknownTarget' || error.code === 'NoTargets'))
        throw new ResolveError('NoTargets', error.message);
      throw error;
    }
  }
  const rebalance = spec.rebalance;
  if (!rebalance) throw new ResolveError('InvalidSpec', 'spec.rebalance is required for a Rebalance migration');
  const input = {
    pool: ctx.pool,
    poolName: ctx.migration.spec.poolRef.name,
    workers,
    pods: ctx.pods,
    sources: [],
    ...(rebalance.weights ? { weights: rebalance.weights } : {}),
  };
  const { participants, emptied } = rebalanceWorkers(input);
  if (participants.length === 0) throw new ResolveError('NoTargets', `no ready, non-draining worker of pool ${ctx.pool} to rebalance over`);
  const sessionsByWorker = new Map<string, string[]>();
  for (const worker of participants) sessionsByWorker.set(worker.name, await ctx.store.listByOwner(ctx.pool, worker.name));
  const balanced = planRebalance({
    sessionsByWorker,
    workers: participants,
    maxMovesPerRound: rebalance.maxMovesPerRound,
    tolerance: rebalance.tolerancePercent / 100,
  });
  if (emptied.length === 0) return { plan: balanced, sources: [] };
  // Workers weighing 0 are emptied onto the others, within the same cap.
  let budget = Math.max(0, rebalance.maxMovesPerRound - balanced.summary.totalSessions);
  const bySource = new Map<string, string[]>();
  for (const [worker, all] of await listSourceSessions(ctx.store, ctx.pool, emptied)) {
    const ids = all.slice(0, budget);
    budget -= ids.length;
    if (ids.length > 0) bySource.set(worker, ids);
  }
  if (bySource.size === 0) return { plan: balanced, sources: [] };
  const loads = new Map([...sessionsByWorker].map(([w, ids]) => [w, ids.length]));
  const evacuated = planEvacuate({ sources: bySource, targets: participants, targetLoads: loads });
  const moves: PlannedMove[] = [...balanced.moves, ...evacuated.moves];
  return { plan: { kind: 'Rebalance', moves, summary: summarize(moves) }, sources: [] };
}
