// What the SessionMigration runner needs from the world (the controller passes the real thing,
// the unit tests fakes), and the small shared names of the force-drain annotation.
import type { V1Pod } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { SessionMigration, SessionMigrationStatus, SessionPool } from '../../api/index.ts';
import type { EventType } from '../../kube/events.ts';
import type { HandoverCall } from '../../migration/handover.ts';
import type { Logger } from '../../observability/logger.ts';
import { FORCE_DRAIN_ANNOTATION } from '../pool/names.ts';
import type { EvictionApi } from './eviction.ts';
import type { PoolStore } from './store-access.ts';

export { FORCE_DRAIN_ANNOTATION };
export const CONDITION_FORCED = 'ForcedRelease';

export interface RunnerDeps {
  getPool(namespace: string, name: string): Promise<SessionPool | undefined>;
  listPods(namespace: string): V1Pod[];
  drainingNodes(): ReadonlySet<string>;
  storeFor(pool: SessionPool): Promise<PoolStore>;
  /** Writes status (merge patch on /status); the caller keeps it in sync with the object. */
  writeStatus(migration: SessionMigration, status: SessionMigrationStatus): Promise<void>;
  event(migration: SessionMigration, type: EventType, reason: string, note: string): void;
  eviction: EvictionApi;
  /** The transport of live handovers to the pool's workers (absent: store-level moves only). */
  handover?: (pool: SessionPool, store: PoolStore, migration: SessionMigration) => HandoverCall;
  registry?: Registry;
  logger?: Logger;
  now?: () => number;
  /** Executor tuning (tests). */
  graceMs?: number;
  /** Requeue delay while waiting for a target, a budget or a pod's eviction. */
  waitMs?: number;
  /** How long one step may move batches before it writes progress and requeues. Default 1 s. */
  stepBudgetMs?: number;
}

export function isForced(obj: { metadata?: { annotations?: Record<string, string> } }): boolean {
  return obj.metadata?.annotations?.[FORCE_DRAIN_ANNOTATION] === 'true';
}
