// The migration engine's Prometheus metrics, registered once per registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { defaultRegistry } from '../observability/metrics.ts';
import type { MigrationPhase } from './journal.ts';

export const MIGRATION_PHASES: readonly MigrationPhase[] = ['Pending', 'Planning', 'Running', 'Succeeded', 'Failed', 'RolledBack'];

export interface MigrationMetrics {
  sessionsMoved: Counter<'pool' | 'type'>;
  duration: Histogram<'type' | 'result'>;
  failures: Counter<'pool' | 'type' | 'reason'>;
  phase: Gauge<'pool' | 'migration' | 'phase'>;
  setPhase(pool: string, migration: string, phase: MigrationPhase): void;
}

const cache = new WeakMap<Registry, MigrationMetrics>();

export function migrationMetrics(registry: Registry = defaultRegistry()): MigrationMetrics {
  const cached = cache.get(registry);
  if (cached) return cached;
  const sessionsMoved =
    (registry.getSingleMetric('spo_migration_sessions_moved_total') as Counter<'pool' | 'type'> | undefined) ??
    new Counter({
      name: 'spo_migration_sessions_moved_total',
      help: 'Sessions whose owner a migration changed',
      labelNames: ['pool', 'type'],
      registers: [registry],
    });
  const duration =
    (registry.getSingleMetric('spo_migration_duration_seconds') as Histogram<'type' | 'result'> | undefined) ??
    new Histogram({
      name: 'spo_migration_duration_seconds',
      help: 'Duration of migrations from start to a terminal phase',
      labelNames: ['type', 'result'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
      registers: [registry],
    });
  const failures =
    (registry.getSingleMetric('spo_migration_failures_total') as Counter<'pool' | 'type' | 'reason'> | undefined) ??
    new Counter({
      name: 'spo_migration_failures_total',
      help: 'Migrations that failed, by reason',
      labelNames: ['pool', 'type', 'reason'],
      registers: [registry],
    });
  const phase =
    (registry.getSingleMetric('spo_migration_phase') as Gauge<'pool' | 'migration' | 'phase'> | undefined) ??
    new Gauge({
      name: 'spo_migration_phase',
      help: '1 for the current phase of each migration',
      labelNames: ['pool', 'migration', 'phase'],
      registers: [registry],
    });
  const metrics: MigrationMetrics = {
    sessionsMoved,
    duration,
    failures,
    phase,
    setPhase(pool, migration, current) {
      for (const p of MIGRATION_PHASES) phase.set({ pool, migration, phase: p }, p === current ? 1 : 0);
    },
  };
  cache.set(registry, metrics);
  return metrics;
}
