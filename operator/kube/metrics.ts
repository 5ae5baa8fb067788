// Metric constructors that are safe to call more than once per registry: several queues,
// informers or electors in one process share one metric and tell themselves apart by label.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { defaultRegistry } from '../observability/metrics.ts';

export function counter<L extends string>(
  registry: Registry | undefined,
  name: string,
  help: string,
  labelNames: readonly L[],
): Counter<L> {
  const reg = registry ?? defaultRegistry();
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ name, help, labelNames, registers: [reg] });
}

export function gauge<L extends string>(registry: Registry | undefined, name: string, help: string, labelNames: readonly L[]): Gauge<L> {
  const reg = registry ?? defaultRegistry();
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge<L>({ name, help, labelNames, registers: [reg] });
}

export function histogram<L extends string>(
  registry: Registry | undefined,
  name: string,
  help: string,
  labelNames: readonly L[],
  buckets: number[],
): Histogram<L> {
  const reg = registry ?? defaultRegistry();
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Histogram<L>;
  return new Histogram<L>({ name, help, labelNames, buckets, registers: [reg] });
}
