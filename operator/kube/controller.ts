// The runner that feeds a reconcile function from a work queue: `concurrency` workers, each
// taking one key at a time (the queue guarantees one key never runs twice at once). Success
// forgets the key's backoff and honours requeueAfterMs; a 409 Conflict (someone wrote the
// object since we read it) requeues at once and is not an error; any other error requeues
// with the key's exponential backoff. Reconcile counts and durations go to prom-client.
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../observability/logger.ts';
import { errorMessage, isConflict } from './errors.ts';
import { counter, histogram } from './metrics.ts';
import type { WorkQueue } from './workqueue.ts';

export interface ReconcileResult {
  /** Run this key again after this many ms (e.g. to re-check a stabilization window). */
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export type ReconcileOutcome = 'success' | 'requeue' | 'conflict' | 'error';

export interface RunWorkersOptions {
  /** Keys reconciled in parallel. Default 4. */
  concurrency?: number;
  /** Label of the reconcile metrics; defaults to the queue's name. */
  controller?: string;
  registry?: Registry;
  logger?: Logger;
  /** Called after each reconcile (tests, tracing). */
  onOutcome?: (key: string, outcome: ReconcileOutcome, err?: unknown) => void;
}

export interface Workers {
  /** Shuts the queue down and waits for the reconciles in flight (timeoutMs: give up waiting). */
  stop(timeoutMs?: number): Promise<void>;
  /** Resolves when every worker loop has ended. */
  readonly done: Promise<void>;
}

export function runWorkers(queue: WorkQueue, reconcile: Reconcile, options: RunWorkersOptions = {}): Workers {
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const controller = options.controller ?? queue.name;
  const log = options.logger ?? createLogger('controller', { controller });
  const total = counter(options.registry, 'spo_operator_reconcile_total', 'Reconciles by controller and result', ['controller', 'result']);
  const duration = histogram(
    options.registry,
    'spo_operator_reconcile_duration_seconds',
    'Reconcile duration by controller and result',
    ['controller', 'result'],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );

  async function processOne(key: string): Promise<void> {
    const started = performance.now();
    let outcome: ReconcileOutcome;
    let error: unknown;
    try {
      const result = await reconcile(key);
      queue.forget(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after > 0) {
        queue.addAfter(key, after);
        outcome = 'requeue';
      } else {
        outcome = 'success';
      }
    } catch (err) {
      error = err;
      if (isConflict(err)) {
        outcome = 'conflict';
        log.debug({ key }, 'conflict: requeued at once');
        queue.add(key);
      } else {
        outcome = 'error';
        const delayMs = queue.addRateLimited(key);
        log.warn({ key, err: errorMessage(err), retryInMs: delayMs, attempt: queue.numRequeues(key) }, 'reconcile failed');
      }
    } finally {
      queue.done(key);
    }
    total.inc({ controller, result: outcome });
    duration.observe({ controller, result: outcome }, (performance.now() - started) / 1000);
    options.onOutcome?.(key, outcome, error);
  }

  async function worker(): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await processOne(key);
    }
  }

  const done = Promise.all(Array.from({ length: concurrency }, () => worker())).then(() => undefined);
  return {
    done,
    async stop(timeoutMs?: number): Promise<void> {
      await queue.shutdown(timeoutMs);
      if (timeoutMs === undefined) await done;
    },
  };
}
