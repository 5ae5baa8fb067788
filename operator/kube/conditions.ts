// Status conditions as Kubernetes defines them (metav1.Condition): one entry per type;
// lastTransitionTime moves only when status flips; observedGeneration is always the
// generation the reconcile acted on. Pure functions: they return a new array.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  /** RFC 3339, second precision (what metav1.Time serializes). */
  lastTransitionTime: string;
}

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
}

/** RFC 3339 without fractional seconds, as the apiserver stores metav1.Time. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * Returns conditions with `input` set: an existing entry of the same type keeps its
 * lastTransitionTime unless the status changes; order is kept, a new type goes last.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  generation: number | undefined,
  now: Date = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const existing = index === -1 ? undefined : list[index];
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message ?? '',
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: existing && existing.status === input.status ? existing.lastTransitionTime : rfc3339(now),
  };
  if (index === -1) list.push(next);
  else list[index] = next;
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/** True when the two lists say the same thing (to skip a no-op status write). */
export function conditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  return left.every((c) => {
    const other = findCondition(right, c.type);
    return (
      other !== undefined &&
      other.status === c.status &&
      other.reason === c.reason &&
      other.message === c.message &&
      other.observedGeneration === c.observedGeneration &&
      other.lastTransitionTime === c.lastTransitionTime
    );
  });
}
