// Per-pool gauges. Names and labels are a contract with the chart's alerts and dashboard:
// spo_pool_replicas, spo_pool_max_replicas, spo_pool_sessions{kind}, spo_pool_condition.
import type { Registry } from 'prom-client';
import { SESSION_POOL_CONDITIONS, type SessionPool, type SessionPoolStatus } from '../../api/index.ts';
import { gauge } from '../../kube/metrics.ts';

const STATUSES = ['True', 'False', 'Unknown'] as const;

export class PoolMetrics {
  private readonly replicas;
  private readonly maxReplicas;
  private readonly sessions;
  private readonly condition;

  constructor(registry?: Registry) {
    this.replicas = gauge(registry, 'spo_pool_replicas', 'Worker pods of the pool', ['namespace', 'pool']);
    this.maxReplicas = gauge(
      registry,
      'spo_pool_max_replicas',
      'Most workers the pool may run (autoscaling.maxReplicas, or spec.replicas)',
      ['namespace', 'pool'],
    );
    this.sessions = gauge(registry, 'spo_pool_sessions', 'Live sessions of the pool by kind', ['namespace', 'pool', 'kind']);
    this.condition = gauge(registry, 'spo_pool_condition', 'Pool conditions: 1 for the current status of each type', [
      'namespace',
      'pool',
      'type',
      'status',
    ]);
  }

  observe(pool: SessionPool, status: SessionPoolStatus): void {
    const labels = { namespace: pool.metadata.namespace ?? 'default', pool: pool.metadata.name ?? '' };
    this.replicas.set(labels, status.replicas ?? 0);
    this.maxReplicas.set(labels, pool.spec.autoscaling.enabled ? pool.spec.autoscaling.maxReplicas : (pool.spec.replicas ?? 0));
    if (status.activeSessions !== undefined) this.sessions.set({ ...labels, kind: 'active' }, status.activeSessions);
    if (status.anonymousSessions !== undefined) this.sessions.set({ ...labels, kind: 'anonymous' }, status.anonymousSessions);
    for (const type of SESSION_POOL_CONDITIONS) {
      const current = status.conditions?.find((c) => c.type === type)?.status ?? 'Unknown';
      for (const s of STATUSES) this.condition.set({ ...labels, type, status: s }, s === current ? 1 : 0);
    }
  }

  forget(namespace: string, pool: string): void {
    const labels = { namespace, pool };
    this.replicas.remove(labels);
    this.maxReplicas.remove(labels);
    for (const kind of ['active', 'anonymous']) this.sessions.remove({ ...labels, kind });
    for (const type of SESSION_POOL_CONDITIONS) for (const s of STATUSES) this.condition.remove({ ...labels, type, status: s });
  }
}
