// The SessionMigration controller: handlers on the operator's shared informers (SessionMigrations,
// SessionPools, pool pods and Nodes; one watch and cache per resource for every controller), a
// work queue of migration keys, and a thin reconcile: one step of the migration's state machine
// (steps.ts decides it from status and journal, runner.ts carries it out), then a requeue when
// the step says so. A step is bounded (one time slice of batches, one eviction pass), so the
// queue's workers stay shared fairly, and a restarted operator or a new leader continues from
// status + journal. This controller starts no other controller: the runtime wires them.
import { CoreV1Api, CustomObjectsApi, EventsV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  GROUP,
  SESSION_MIGRATION_PLURAL,
  SESSION_POOL_PLURAL,
  VERSION,
  type SessionMigration,
  type SessionMigrationStatus,
  type SessionPool,
} from '../../api/index.ts';
import { patchStatus } from '../../kube/apply.ts';
import { shareConnections } from '../../kube/connections.ts';
import { runWorkers, type ReconcileResult, type Workers } from '../../kube/controller.ts';
import { isNotFound } from '../../kube/errors.ts';
import { EventRecorder } from '../../kube/events.ts';
import { objectKey } from '../../kube/informer.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { isTerminal, currentPhase } from './phases.ts';
import { CONDITION_FORCED, FORCE_DRAIN_ANNOTATION, MigrationRunner } from './runner.ts';
import { StoreAccess } from './store-access.ts';
import { StoreClients } from '../pool/store-clients.ts';
import { workerHandover } from './worker-handover.ts';
import { nodeDrainState } from '../drain/detect.ts';
import { jitteredResync, onChange, type Resync } from '../shared/handlers.ts';
import type { SharedInformers } from '../shared/informers.ts';

export const MIGRATION_CONTROLLER = 'sessionmigration';

export interface MigrationControllerOptions {
  kubeConfig: KubeConfig;
  /** The operator's informers (one watch and cache per resource, shared with the other controllers). */
  informers: SharedInformers;
  registry?: Registry;
  logger?: Logger;
  /** Who records Events (the pod name). */
  identity?: string;
  /** The operator's per-pool store client cache (the pool controller's); built here when absent. */
  storeClients?: StoreClients;
  concurrency?: number;
  /** Executor grace between freezing a batch and swapping owners. */
  graceMs?: number;
  /** How long one step may move batches before it writes progress and requeues. Default 1 s. */
  stepBudgetMs?: number;
  /** Re-enqueue the migrations not yet ended about this often (± 10 %). Default 10 min; 0 disables. */
  resyncMs?: number;
}

export interface RunningController {
  stop(): Promise<void>;
  /** Resolves once the caches have synced. */
  ready: Promise<void>;
}

export function startMigrationController(options: MigrationControllerOptions): RunningController {
  const kc = shareConnections(options.kubeConfig);
  const log = options.logger ?? createLogger('migration-controller');
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const registry = options.registry;
  const storeClients =
    options.storeClients ??
    new StoreClients({
      readSecret: (namespace, name) => core.readNamespacedSecret({ name, namespace }),
      ...(registry ? { registry } : {}),
      logger: log,
    });
  const ownsStoreClients = !options.storeClients;
  const storeAccess = new StoreAccess(storeClients);
  const events = new EventRecorder({
    api: kc.makeApiClient(EventsV1Api),
    reportingController: 'session-pool-operator',
    reportingInstance: options.identity ?? 'session-pool-operator',
    logger: log,
  });
  const { migrations, pools, pods, nodes } = options.informers;

  const queue = new WorkQueue({ name: MIGRATION_CONTROLLER, ...(registry ? { registry } : {}) });
  // A migration's own status writes come back as updates: only what reconcile() reads enqueues
  // (identity, deletion, phase, the force annotation and condition); a run in flight is skipped anyway.
  const unsubscribe = [
    migrations.on(
      onChange<SessionMigration>(
        (m) =>
          JSON.stringify([
            m.metadata.uid,
            m.metadata.generation,
            m.metadata.deletionTimestamp ?? null,
            m.metadata.annotations?.[FORCE_DRAIN_ANNOTATION],
            currentPhase(m),
            (m.status?.conditions ?? []).filter((c) => c.type === CONDITION_FORCED).map((c) => c.status),
          ]),
        (m) => objectKey(m),
        (key, why) => {
          log.debug({ migration: key, why }, 'enqueued');
          queue.add(key);
        },
        migrations.list(),
      ),
    ),
  ];
  // The status this process last wrote, per uid: the cache may lag behind our own writes for a
  // moment, and a step must never be decided from an older status than the last one written.
  const written = new Map<string, SessionMigrationStatus>();
  const abort = new AbortController();

  const writeStatus = async (m: SessionMigration, status: SessionMigrationStatus): Promise<void> => {
    await patchStatus(
      custom,
      {
        group: GROUP,
        version: VERSION,
        plural: SESSION_MIGRATION_PLURAL,
        namespace: m.metadata.namespace ?? 'default',
        name: m.metadata.name ?? '',
      },
      status,
    );
    written.set(m.metadata.uid ?? '', structuredClone(status));
  };

  const runner = new MigrationRunner({
    getPool: async (namespace, name) => {
      const cached = pools.get(name, namespace);
      if (cached) return cached;
      try {
        return (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: SESSION_POOL_PLURAL,
          namespace,
          name,
        })) as SessionPool;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    listPods: (namespace) => pods.list(namespace),
    drainingNodes: () =>
      new Set(
        nodes
          .list()
          .filter((n) => nodeDrainState(n).draining)
          .map((n) => n.metadata?.name ?? ''),
      ),
    storeFor: (pool) => storeAccess.forPool(pool),
    writeStatus,
    event: (m, type, reason, note) => events.record(m, type, reason, note),
    eviction: core,
    handover: workerHandover({ readSecret: (namespace, name) => core.readNamespacedSecret({ name, namespace }), pods, logger: log }),
    ...(registry ? { registry } : {}),
    logger: log,
    ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    ...(options.stepBudgetMs !== undefined ? { stepBudgetMs: options.stepBudgetMs } : {}),
  });

  const reconcile = async (key: string): Promise<ReconcileResult> => {
    const cached = migrations.getByKey(key);
    if (!cached) return {};
    const mine = written.get(cached.metadata.uid ?? '');
    const m = mine ? { ...cached, status: mine } : cached;
    return runner.step(m, abort.signal);
  };

  let workers: Workers | undefined;
  let resync: Resync | undefined;
  // Deleted migrations: forget the memo (a run in flight finishes; it is bounded by its deadline).
  unsubscribe.push(
    migrations.on((event, obj) => {
      if (event !== 'delete') return;
      written.delete(obj.metadata?.uid ?? '');
      runner.forget(obj.metadata?.uid ?? '');
    }),
  );

  const ready = (async () => {
    await Promise.all([pools.waitForSync(), pods.waitForSync(), nodes.waitForSync(), migrations.waitForSync()]);
    for (const key of migrations.keys()) queue.add(key);
    // Only now: a migration must never be judged against caches that have not synced (a pool
    // missing from an empty cache is not a pool that does not exist).
    workers = runWorkers(queue, reconcile, {
      concurrency: options.concurrency ?? 4,
      controller: MIGRATION_CONTROLLER,
      ...(registry ? { registry } : {}),
      logger: log,
    });
    // Level-triggered safety net for the migrations that have not ended (ended ones need nothing).
    resync = jitteredResync(
      options.resyncMs ?? 600_000,
      () =>
        migrations
          .list()
          .filter((m) => !isTerminal(currentPhase(m)))
          .map((m) => objectKey(m)),
      (key, delayMs) => queue.addAfter(key, delayMs),
    );
  })();

  return {
    ready,
    async stop(): Promise<void> {
      for (const off of unsubscribe) off();
      resync?.stop();
      // A step in flight stops at its next batch boundary (the journal holds where).
      abort.abort();
      if (workers) await workers.stop(5_000);
      else await queue.shutdown(0);
      await events.flush().catch(() => undefined);
      if (ownsStoreClients) await storeClients.closeAll();
    },
  };
}
