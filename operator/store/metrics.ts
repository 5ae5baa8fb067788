// The store's Prometheus metrics, all named spo_store_*. Registered once per registry: a
// second store on the same registry shares them.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface StoreMetrics {
  operations: Counter<'op' | 'result'>;
  duration: Histogram<'op'>;
  sessions: Gauge<'pool'>;
  degraded: Gauge;
  expiries: Counter<'pool'>;
  leasesReleased: Counter<'pool'>;
  conflicts: Counter<'op' | 'kind'>;
  retries: Counter<'op'>;
  corruptions: Counter;
  journalReplays: Counter<'result'>;
  updatePaths: Counter<'path'>;
}

function shared<T>(registry: Registry, name: string, make: () => T): T {
  const existing = registry.getSingleMetric(name);
  return existing ? (existing as T) : make();
}

export function storeMetrics(registry: Registry): StoreMetrics {
  const registers = [registry];
  return {
    operations: shared(
      registry,
      'spo_store_operations_total',
      () =>
        new Counter({
          name: 'spo_store_operations_total',
          help: 'Store operations by op and result',
          labelNames: ['op', 'result'],
          registers,
        }),
    ),
    duration: shared(
      registry,
      'spo_store_operation_duration_seconds',
      () =>
        new Histogram({
          name: 'spo_store_operation_duration_seconds',
          help: 'Latency of store operations, retries included',
          labelNames: ['op'],
          buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
          registers,
        }),
    ),
    sessions: shared(
      registry,
      'spo_store_sessions',
      () =>
        new Gauge({
          name: 'spo_store_sessions',
          help: 'Sessions in the pool index (as of the last count or sweep)',
          labelNames: ['pool'],
          registers,
        }),
    ),
    degraded: shared(
      registry,
      'spo_store_degraded',
      () => new Gauge({ name: 'spo_store_degraded', help: '1 while the store serves from its local cache and journal', registers }),
    ),
    expiries: shared(
      registry,
      'spo_store_expiries_total',
      () =>
        new Counter({
          name: 'spo_store_expiries_total',
          help: 'Expired or deleted sessions removed from indexes by the sweep',
          labelNames: ['pool'],
          registers,
        }),
    ),
    leasesReleased: shared(
      registry,
      'spo_store_leases_released_total',
      () =>
        new Counter({
          name: 'spo_store_leases_released_total',
          help: 'Lapsed leases released by the sweep',
          labelNames: ['pool'],
          registers,
        }),
    ),
    conflicts: shared(
      registry,
      'spo_store_conflicts_total',
      () =>
        new Counter({
          name: 'spo_store_conflicts_total',
          help: 'Refused writes: version conflicts, fenced, moving, owned',
          labelNames: ['op', 'kind'],
          registers,
        }),
    ),
    retries: shared(
      registry,
      'spo_store_retries_total',
      () => new Counter({ name: 'spo_store_retries_total', help: 'Retries after transient Redis errors', labelNames: ['op'], registers }),
    ),
    corruptions: shared(
      registry,
      'spo_store_corruptions_total',
      () => new Counter({ name: 'spo_store_corruptions_total', help: 'Corrupted sessions detected and quarantined', registers }),
    ),
    journalReplays: shared(
      registry,
      'spo_store_journal_replays_total',
      () =>
        new Counter({
          name: 'spo_store_journal_replays_total',
          help: 'Degraded-mode journal entries replayed, by result',
          labelNames: ['result'],
          registers,
        }),
    ),
    updatePaths: shared(
      registry,
      'spo_store_update_paths_total',
      () =>
        new Counter({
          name: 'spo_store_update_paths_total',
          help: 'Updates by path: fast (WRITE_IF_HEADER wrote), fallback (the header had changed: UPDATE), full (no header known: UPDATE)',
          labelNames: ['path'],
          registers,
        }),
    ),
  };
}
