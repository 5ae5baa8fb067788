// The worker's Prometheus metrics, registered on the registry /metrics serves.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WorkerMetrics {
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route' | 'method'>;
  inFlight: Gauge;
  executed: Counter<'handler' | 'mode' | 'result'>;
  draining: Gauge;
  mode: Gauge<'mode'>;
  localSessions: Gauge;
  activations: Gauge;
  degradedReads: Counter;
  modeSwitches: Counter<'from' | 'to'>;
  heartbeats: Counter<'result'>;
  handlerFailures: Counter<'reason'>;
}

export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'spo_worker_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    duration: new Histogram({
      name: 'spo_worker_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    inFlight: new Gauge({ name: 'spo_worker_requests_in_flight', help: 'HTTP requests being served', registers }),
    executed: new Counter({
      name: 'spo_worker_sessions_executed_total',
      help: 'Handler runs by handler, session mode and result',
      labelNames: ['handler', 'mode', 'result'],
      registers,
    }),
    draining: new Gauge({ name: 'spo_worker_draining', help: '1 while the worker drains', registers }),
    mode: new Gauge({ name: 'spo_worker_session_mode', help: '1 for the current session mode', labelNames: ['mode'], registers }),
    localSessions: new Gauge({
      name: 'spo_worker_local_sessions',
      help: 'Sessions held in worker memory (WorkerLocal and Dual modes)',
      registers,
    }),
    activations: new Gauge({
      name: 'spo_worker_activations',
      help: 'Live activations: sessions whose lease this worker holds and whose requests it runs (docs/activation.md)',
      registers,
    }),
    degradedReads: new Counter({
      name: 'spo_worker_degraded_reads_total',
      help: 'Session reads answered by a live activation while the store was unreachable (docs/activation.md)',
      registers,
    }),
    modeSwitches: new Counter({
      name: 'spo_worker_mode_switches_total',
      help: 'Completed session mode switch steps',
      labelNames: ['from', 'to'],
      registers,
    }),
    heartbeats: new Counter({
      name: 'spo_worker_heartbeats_total',
      help: 'Registrations refreshed in the store, by result',
      labelNames: ['result'],
      registers,
    }),
    handlerFailures: new Counter({
      name: 'spo_worker_handler_failures_total',
      help: 'Failed calls of the external handler (docs/handler-contract.md), by reason',
      labelNames: ['reason'],
      registers,
    }),
  };
}
