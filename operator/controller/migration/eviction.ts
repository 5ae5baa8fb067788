// Evicts pods through the Eviction API, so disruption budgets hold: a 429 (the budget allows no
// disruption now) is retried until the deadline; a pod already gone counts as evicted.
import type { CoreV1Api } from '@kubernetes/client-node';
import { errorMessage, isNotFound, statusCode } from '../../kube/errors.ts';

export type EvictionApi = Pick<CoreV1Api, 'createNamespacedPodEviction'>;

export interface EvictionResult {
  evicted: string[];
  /** Pods still there at the deadline, with the last refusal. */
  blocked: { pod: string; reason: string }[];
}

export interface EvictOptions {
  deadlineAt: number;
  retryMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  signal?: AbortSignal;
}

const sleepReal = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Evicts one pod once: 'evicted' (or already gone), or the refusal (429 budget, 500 multiple budgets...). */
export async function evictOnce(
  api: EvictionApi,
  namespace: string,
  pod: string,
): Promise<{ ok: true } | { ok: false; code: number | undefined; reason: string }> {
  try {
    await api.createNamespacedPodEviction({
      name: pod,
      namespace,
      body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace } },
    });
    return { ok: true };
  } catch (error) {
    if (isNotFound(error)) return { ok: true };
    return { ok: false, code: statusCode(error), reason: errorMessage(error) };
  }
}

/** Evicts every pod, retrying refusals until the deadline. */
export async function evictPods(
  api: EvictionApi,
  namespace: string,
  pods: readonly string[],
  options: EvictOptions,
): Promise<EvictionResult> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? sleepReal;
  const retryMs = options.retryMs ?? 1_000;
  const evicted: string[] = [];
  let pending = [...pods];
  const reasons = new Map<string, string>();
  for (;;) {
    const next: string[] = [];
    for (const pod of pending) {
      const outcome = await evictOnce(api, namespace, pod);
      if (outcome.ok) evicted.push(pod);
      else {
        reasons.set(pod, outcome.code === 429 ? `disruption budget: ${outcome.reason}` : outcome.reason);
        next.push(pod);
      }
    }
    pending = next;
    if (pending.length === 0 || now() + retryMs >= options.deadlineAt || options.signal?.aborted) break;
    await sleep(retryMs);
  }
  return { evicted, blocked: pending.map((pod) => ({ pod, reason: reasons.get(pod) ?? 'not evicted' })) };
}
