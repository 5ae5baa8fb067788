// Retries of transient Redis errors: exponential backoff with full jitter, bounded in
// attempts and in total time. Pure apart from the timer.
import { backoffDelay } from '../kube/clock.ts';

export interface RetryPolicy {
  /** Attempts in all, the first included. Default 6. */
  maxAttempts: number;
  /** First backoff ceiling in ms. Default 25. */
  baseDelayMs: number;
  /** Largest backoff ceiling in ms. Default 1000. */
  maxDelayMs: number;
  /** No new attempt starts after this many ms from the first. Default 5000. */
  maxElapsedMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 25, maxDelayMs: 1000, maxElapsedMs: 5000 };

const TRANSIENT_PREFIXES = ['TRYAGAIN', 'CLUSTERDOWN', 'MOVED', 'ASK', 'LOADING', 'READONLY', 'MASTERDOWN', 'BUSY '];
const TRANSIENT_MESSAGES = [
  'Connection is closed',
  'Connection is in subscriber mode',
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  'Too many Cluster redirections',
  'Reached the max retries per request limit',
  'Command timed out',
  "Cluster isn't ready",
  "Stream isn't writeable",
  'socket',
];
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
  'EAI_AGAIN',
]);

/** True for errors that a later attempt may not see: connection loss, failover, resharding. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  const message = error.message;
  if (TRANSIENT_PREFIXES.some((prefix) => message.startsWith(prefix))) return true;
  if (TRANSIENT_MESSAGES.some((text) => message.includes(text))) return true;
  const last = (error as { lastNodeError?: unknown }).lastNodeError;
  return last instanceof Error && last !== error ? isTransient(last) : false;
}

/** The policy's delay before attempt + 1: full jitter, a uniform delay in [0, min(max, base * 2^(attempt-1))). */
export function retryDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  return backoffDelay(attempt, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs, jitter: 'full' }, random);
}

export interface RetryHooks {
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs fn; on a transient error waits and runs it again, within the policy's bounds. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  const started = (hooks.now ?? Date.now)();
  try {
    return await fn(1);
  } catch (error) {
    return retryAfter(fn, policy, hooks, error, started);
  }
}

/** The rest of withRetry once attempt 1 failed with `error` (attempt 1 started at `started`). Callers on a
 *  hot path run attempt 1 themselves and come here only on failure, so success allocates nothing extra. */
export async function retryAfter<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  hooks: RetryHooks,
  error: unknown,
  started: number,
): Promise<T> {
  const now = hooks.now ?? Date.now;
  const sleep = hooks.sleep ?? defaultSleep;
  let last = error;
  for (let attempt = 1; ; attempt++) {
    if (!isTransient(last) || attempt >= policy.maxAttempts) throw last;
    const delay = retryDelay(policy, attempt, hooks.random);
    if (now() - started + delay > policy.maxElapsedMs) throw last;
    hooks.onRetry?.(last, attempt, delay);
    await sleep(delay);
    try {
      return await fn(attempt + 1);
    } catch (next) {
      last = next;
    }
  }
}

/** A promise rejected with exactly `error` (a synchronous throw turned into a rejection). */
export async function rejected<T>(error: unknown): Promise<T> {
  throw error;
}
