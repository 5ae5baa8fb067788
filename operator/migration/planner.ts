// The migration planner: pure functions from "who owns what" to "what moves where". No I/O,
// no clock, deterministic for a given input (ties broken by worker name), so a plan written to
// status on a dry run is the plan a real run would execute for the same input.
//
// Unowned sessions are counted under the owner '' (as SessionStore.countByOwner does).

export type MigrationKind = 'Evacuate' | 'Migrate' | 'Rebalance';

/** One group of sessions moving from one owner to one target. `from` is '' for unowned. */
export interface PlannedMove {
  from: string;
  to: string;
  sessionIds: string[];
}

export interface PlanSummaryMove {
  from: string;
  to: string;
  sessions: number;
}

export interface PlanSummary {
  /** Sessions the plan moves. */
  totalSessions: number;
  /** At most `maxSummaryMoves` entries, largest first. */
  moves: PlanSummaryMove[];
  /** How many (from, to) pairs were left out of `moves`. */
  omittedMoves: number;
}

export interface Plan {
  kind: MigrationKind;
  moves: PlannedMove[];
  summary: PlanSummary;
}

export interface Batch {
  index: number;
  moves: PlannedMove[];
}

/** A ready worker that may receive sessions; weight defaults to 1. */
export interface TargetWorker {
  name: string;
  weight?: number;
}

export type PlanErrorCode =
  'NoTargets' | 'UnknownTarget' | 'TargetIsSource' | 'NoSources' | 'InvalidWeight' | 'InvalidOption' | 'DuplicateSession';

export class PlanError extends Error {
  readonly code: PlanErrorCode;
  constructor(code: PlanErrorCode, message: string) {
    super(message);
    this.name = 'PlanError';
    this.code = code;
  }
}

export const DEFAULT_MAX_SUMMARY_MOVES = 50;

// ---------------------------------------------------------------------------------------------
// helpers

function checkTargets(targets: readonly TargetWorker[]): Map<string, number> {
  const weights = new Map<string, number>();
  for (const target of targets) {
    const weight = target.weight ?? 1;
    if (!Number.isFinite(weight) || weight <= 0)
      throw new PlanError('InvalidWeight', `worker ${target.name} has weight ${weight}: weights must be finite and > 0`);
    if (target.name === '') throw new PlanError('InvalidOption', 'a target worker needs a name');
    weights.set(target.name, weight);
  }
  return weights;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Summarises moves: total and the largest (from, to) pairs, bounded. */
export function summarize(moves: readonly PlannedMove[], maxSummaryMoves = DEFAULT_MAX_SUMMARY_MOVES): PlanSummary {
  const pairs = new Map<string, PlanSummaryMove>();
  let total = 0;
  for (const move of moves) {
    total += move.sessionIds.length;
    const key = `${move.from}\u0000${move.to}`;
    const pair = pairs.get(key);
    if (pair) pair.sessions += move.sessionIds.length;
    else pairs.set(key, { from: move.from, to: move.to, sessions: move.sessionIds.length });
  }
  const sorted = [...pairs.values()].sort((a, b) => b.sessions - a.sessions || byName(a.from, b.from) || byName(a.to, b.to));
  const kept = sorted.slice(0, Math.max(0, maxSummaryMoves));
  return { totalSessions: total, moves: kept, omittedMoves: sorted.length - kept.length };
}

/** A min-heap of targets keyed by (load + 1) / weight: the emptiest (relative to weight) first. */
class TargetHeap {
  private readonly items: { name: string; load: number; weight: number }[] = [];

  push(name: string, load: number, weight: number): void {
    this.items.push({ name, load, weight });
    this.up(this.items.length - 1);
  }

  /** Gives one session to the emptiest target and returns its name. */
  takeOne(): string {
    const top = this.items[0];
    if (!top) throw new PlanError('NoTargets', 'no target');
    top.load += 1;
    this.down(0);
    return top.name;
  }

  private less(i: number, j: number): boolean {
    const a = this.items[i]!;
    const b = this.items[j]!;
    const ka = (a.load + 1) / a.weight;
    const kb = (b.load + 1) / b.weight;
    return ka < kb || (ka === kb && a.name < b.name);
  }

  private swap(i: number, j: number): void {
    const t = this.items[i]!;
    this.items[i] = this.items[j]!;
    this.items[j] = t;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.less(l, best)) best = l;
      if (r < n && this.less(r, best)) best = r;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }
}

function finish(kind: MigrationKind, grouped: Map<string, Map<string, string[]>>, maxSummaryMoves?: number): Plan {
  const moves: PlannedMove[] = [];
  for (const from of [...grouped.keys()].sort(byName)) {
    const tos = grouped.get(from)!;
    for (const to of [...tos.keys()].sort(byName)) {
      const sessionIds = tos.get(to)!;
      if (sessionIds.length > 0) moves.push({ from, to, sessionIds });
    }
  }
  return { kind, moves, summary: summarize(moves, maxSummaryMoves) };
}

function addTo(grouped: Map<string, Map<string, string[]>>, from: string, to: string, id: string): void {
  let tos = grouped.get(from);
  if (!tos) grouped.set(from, (tos = new Map<string, string[]>()));
  let ids = tos.get(to);
  if (!ids) tos.set(to, (ids = []));
  ids.push(id);
}

// ---------------------------------------------------------------------------------------------
// Evacuate

export interface EvacuateInput {
  /** Session ids of each source worker (all of them move). */
  sources: ReadonlyMap<string, readonly string[]>;
  /** Ready workers that may receive sessions (draining and evacuated ones left out by the caller). */
  targets: readonly TargetWorker[];
  /** Current session counts of the targets (missing = 0). */
  targetLoads?: ReadonlyMap<string, number>;
  maxSummaryMoves?: number;
}

/** Every session of the sources moves; each goes to the emptiest target relative to its weight. */
export function planEvacuate(input: EvacuateInput): Plan {
  if (input.sources.size === 0) throw new PlanError('NoSources', 'an evacuation needs at least one source worker');
  const weights = checkTargets(input.targets);
  for (const source of input.sources.keys()) weights.delete(source);
  if (weights.size === 0)
    throw new PlanError('NoTargets', `no ready target worker besides the sources (${[...input.sources.keys()].join(', ')})`);
  const heap = new TargetHeap();
  for (const name of [...weights.keys()].sort(byName)) heap.push(name, input.targetLoads?.get(name) ?? 0, weights.get(name)!);
  const grouped = new Map<string, Map<string, string[]>>();
  const seen = new Set<string>();
  for (const source of [...input.sources.keys()].sort(byName)) {
    for (const id of input.sources.get(source)!) {
      if (seen.has(id)) throw new PlanError('DuplicateSession', `session ${id} is listed under two sources`);
      seen.add(id);
      addTo(grouped, source, heap.takeOne(), id);
    }
  }
  return finish('Evacuate', grouped, input.maxSummaryMoves);
}

// ---------------------------------------------------------------------------------------------
// Migrate

export interface MigrateInput {
  /** The named sessions and their current owners ('' or null when unowned). */
  sessions: readonly { id: string; owner: string | null }[];
  target: string;
  /** Ready workers; the target must be one of them. */
  targets: readonly TargetWorker[];
  maxSummaryMoves?: number;
}

export interface MigratePlan extends Plan {
  /** Sessions already owned by the target: nothing to do. */
  alreadyOnTarget: string[];
}

export function planMigrate(input: MigrateInput): MigratePlan {
  const weights = checkTargets(input.targets);
  if (weights.size === 0) throw new PlanError('NoTargets', 'no ready target worker');
  if (!weights.has(input.target)) throw new PlanError('UnknownTarget', `target worker ${input.target} is not a ready worker of the pool`);
  const grouped = new Map<string, Map<string, string[]>>();
  const alreadyOnTarget: string[] = [];
  const seen = new Set<string>();
  for (const session of input.sessions) {
    if (seen.has(session.id)) throw new PlanError('DuplicateSession', `session ${session.id} is named twice`);
    seen.add(session.id);
    const owner = session.owner ?? '';
    if (owner === input.target) alreadyOnTarget.push(session.id);
    else addTo(grouped, owner, input.target, session.id);
  }
  return { ...finish('Migrate', grouped, input.maxSummaryMoves), alreadyOnTarget };
}

// ---------------------------------------------------------------------------------------------
// Rebalance

export interface RebalanceOptions {
  /** Relative tolerance around each worker's fair share; 0.1 = within ±10 %. Default 0.1. */
  tolerance?: number;
  /** At most this many sessions move in one round (a rebalance never becomes a storm). */
  maxMovesPerRound: number;
}

export interface CountMove {
  from: string;
  to: string;
  count: number;
}

/** Largest-remainder apportionment of `total` by weight: integer shares that sum to total. */
export function fairShares(total: number, workers: readonly { name: string; weight: number }[]): Map<string, number> {
  const sumWeights = workers.reduce((s, w) => s + w.weight, 0);
  const rows = workers.map((w) => {
    const exact = (total * w.weight) / sumWeights;
    return { name: w.name, floor: Math.floor(exact), rest: exact - Math.floor(exact) };
  });
  let left = total - rows.reduce((s, r) => s + r.floor, 0);
  const order = [...rows].sort((a, b) => b.rest - a.rest || byName(a.name, b.name));
  for (const row of order) {
    if (left <= 0) break;
    row.floor += 1;
    left -= 1;
  }
  return new Map(rows.map((r) => [r.name, r.floor]));
}

/**
 * How many sessions move between which workers so that every worker ends within tolerance of
 * its fair share, with the fewest moves, from over-loaded to under-loaded workers only, capped.
 * Only the counts of the given (ready) workers are considered.
 */
export function planRebalanceCounts(
  counts: ReadonlyMap<string, number>,
  workers: readonly TargetWorker[],
  options: RebalanceOptions,
): CountMove[] {
  const tolerance = options.tolerance ?? 0.1;
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) throw new PlanError('InvalidOption', `tolerance ${tolerance} must be >= 0`);
  if (!Number.isInteger(options.maxMovesPerRound) || options.maxMovesPerRound < 0) {
    throw new PlanError('InvalidOption', `maxMovesPerRound ${options.maxMovesPerRound} must be an integer >= 0`);
  }
  const weights = checkTargets(workers);
  if (weights.size === 0) throw new PlanError('NoTargets', 'no ready worker to rebalance over');
  const names = [...weights.keys()].sort(byName);
  const total = names.reduce((s, n) => s + (counts.get(n) ?? 0), 0);
  const sumWeights = names.reduce((s, n) => s + weights.get(n)!, 0);
  const shares = fairShares(
    total,
    names.map((name) => ({ name, weight: weights.get(name)! })),
  );
  const senders: { name: string; must: number; may: number }[] = [];
  const receivers: { name: string; must: number; may: number }[] = [];
  for (const name of names) {
    const count = counts.get(name) ?? 0;
    const share = shares.get(name)!;
    const ideal = (total * weights.get(name)!) / sumWeights;
    const high = Math.max(share, Math.floor(ideal * (1 + tolerance)));
    const low = Math.min(share, Math.ceil(ideal * (1 - tolerance)));
    if (count > share) senders.push({ name, must: Math.max(0, count - high), may: count - share });
    else if (count < share) receivers.push({ name, must: Math.max(0, low - count), may: share - count });
  }
  const mustOut = senders.reduce((s, x) => s + x.must, 0);
  const mustIn = receivers.reduce((s, x) => s + x.must, 0);
  const needed = Math.max(mustOut, mustIn);
  if (needed === 0) return [];
  const moves = Math.min(needed, options.maxMovesPerRound);
  const outQuota = quotas(senders, moves);
  const inQuota = quotas(receivers, moves);
  // Pair the largest quotas first: few (from, to) pairs, the emptiest workers filled first.
  const out = [...outQuota].filter(([, q]) => q > 0).sort((a, b) => b[1] - a[1] || byName(a[0], b[0]));
  const into = [...inQuota].filter(([, q]) => q > 0).sort((a, b) => b[1] - a[1] || byName(a[0], b[0]));
  const result: CountMove[] = [];
  let i = 0;
  let j = 0;
  while (i < out.length && j < into.length) {
    const o = out[i]!;
    const r = into[j]!;
    const n = Math.min(o[1], r[1]);
    result.push({ from: o[0], to: r[0], count: n });
    o[1] -= n;
    r[1] -= n;
    if (o[1] === 0) i++;
    if (r[1] === 0) j++;
  }
  return result;
}

/**
 * Spreads `moves` units over the side's workers: first their mandatory amounts (largest
 * first), then the optional rest up to each worker's fair share, one unit at a time to the
 * worker with the most left. Never exceeds a worker's `may`.
 */
function quotas(side: { name: string; must: number; may: number }[], moves: number): Map<string, number> {
  const result = new Map(side.map((s) => [s.name, 0]));
  let left = moves;
  for (const phase of ['must', 'may'] as const) {
    // Fill by levelling: always give to the worker with the largest remaining need.
    const remaining = side.map((s) => ({ name: s.name, need: (phase === 'must' ? s.must : s.may) - result.get(s.name)! }));
    while (left > 0) {
      let best: { name: string; need: number } | undefined;
      for (const r of remaining) if (r.need > 0 && (!best || r.need > best.need || (r.need === best.need && r.name < best.name))) best = r;
      if (!best) break;
      // Give in chunks down to the next-largest need, so this stays fast for large counts.
      let second = 0;
      for (const r of remaining) if (r !== best && r.need > second) second = r.need;
      const chunk = Math.max(1, Math.min(left, best.need - second));
      best.need -= chunk;
      result.set(best.name, result.get(best.name)! + chunk);
      left -= chunk;
    }
  }
  return result;
}

export interface RebalanceInput extends RebalanceOptions {
  /** Session ids of each worker; ready workers named in `workers` take part. */
  sessionsByWorker: ReadonlyMap<string, readonly string[]>;
  workers: readonly TargetWorker[];
  maxSummaryMoves?: number;
}

export function planRebalance(input: RebalanceInput): Plan {
  const counts = new Map<string, number>();
  for (const [worker, ids] of input.sessionsByWorker) counts.set(worker, ids.length);
  const countMoves = planRebalanceCounts(counts, input.workers, input);
  const grouped = new Map<string, Map<string, string[]>>();
  const taken = new Map<string, number>();
  for (const move of countMoves) {
    const ids = input.sessionsByWorker.get(move.from) ?? [];
    const start = taken.get(move.from) ?? 0;
    for (const id of ids.slice(start, start + move.count)) addTo(grouped, move.from, move.to, id);
    taken.set(move.from, start + move.count);
  }
  return finish('Rebalance', grouped, input.maxSummaryMoves);
}

// ---------------------------------------------------------------------------------------------
// Batches

/**
 * Cuts a plan into batches of at most `batchSize` sessions. Sessions of different (from, to)
 * pairs are interleaved, so a migration stopped half-way has spread its sessions over every
 * target rather than filled one.
 */
export function toBatches(moves: readonly PlannedMove[], batchSize: number): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new PlanError('InvalidOption', `batch size ${batchSize} must be an integer >= 1`);
  const cursors = moves.map(() => 0);
  const batches: Batch[] = [];
  let current = new Map<number, string[]>();
  let size = 0;
  const flush = (): void => {
    if (size === 0) return;
    const batchMoves: PlannedMove[] = [];
    for (const [k, ids] of [...current].sort((a, b) => a[0] - b[0]))
      batchMoves.push({ from: moves[k]!.from, to: moves[k]!.to, sessionIds: ids });
    batches.push({ index: batches.length, moves: batchMoves });
    current = new Map();
    size = 0;
  };
  const totalLeft = (): boolean => cursors.some((c, k) => c < moves[k]!.sessionIds.length);
  // Each round takes from every pair in proportion to its size (at least one session).
  const total = moves.reduce((s, m) => s + m.sessionIds.length, 0);
  while (totalLeft()) {
    for (let k = 0; k < moves.length; k++) {
      const ids = moves[k]!.sessionIds;
      let take = Math.max(1, Math.round((ids.length / Math.max(1, total)) * batchSize));
      while (take > 0 && cursors[k]! < ids.length) {
        const room = batchSize - size;
        const n = Math.min(take, room, ids.length - cursors[k]!);
        let list = current.get(k);
        if (!list) current.set(k, (list = []));
        for (let x = 0; x < n; x++) list.push(ids[cursors[k]! + x]!);
        cursors[k]! += n;
        size += n;
        take -= n;
        if (size >= batchSize) flush();
      }
    }
  }
  flush();
  return batches;
}
