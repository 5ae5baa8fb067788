// Shared helpers of the planner's unit tests (planner.test.ts, planner-rebalance.test.ts).
import { expect } from 'chai';
import { PlanError, type Plan, type PlannedMove } from './planner.ts';

/** A small deterministic PRNG (mulberry32) so property failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
}

export function counted(plan: Plan): Map<string, number> {
  const into = new Map<string, number>();
  for (const m of plan.moves) into.set(m.to, (into.get(m.to) ?? 0) + m.sessionIds.length);
  return into;
}

export function allIds(moves: readonly PlannedMove[]): string[] {
  return moves.flatMap((m) => m.sessionIds);
}

export function expectPlanError(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(PlanError);
    expect((error as PlanError).code).to.equal(code);
    return;
  }
  expect.fail(`expected PlanError ${code}`);
}
