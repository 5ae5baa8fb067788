// The Prometheus registry shared by every component of one process. Components register
// their metrics on it; /metrics serves it. Tests can pass a fresh Registry instead.
import { Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };

let processRegistry: Registry | undefined;

/** The process-wide registry, with Node.js default metrics (RSS, CPU, event loop lag). */
export function defaultRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}
