// The Prometheus registry shared by every component of one process. Components register
// their metrics on it; /metrics serves it. Tests can pass a fresh Registry instead.
import { Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };

let processRegistry: Registry | undefined;

/**
 * How often the event loop's delay is sampled, in ms. prom-client's default (10 ms) wakes an idle process
 * 100 times a second: about a third of an idle worker's CPU (20 ms per second, docs/worker.md). A stall longer
 * than 100 ms is still always seen (it delays a sample); a shorter one only when it overlaps a sample.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** The process-wide registry, with Node.js default metrics (RSS, CPU, event loop lag). */
export function defaultRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
  return processRegistry;
}
