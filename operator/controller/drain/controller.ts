// The maintenance drain controller (after CloudNativePG's node-to-cluster mapping): watches
// Nodes; when one is cordoned or carries a drain taint, every SessionPool with
// maintenance.evacuateOnCordon and pods on that node gets one Evacuate SessionMigration for
// it (deterministic name, owned by the pool, evictPods per maintenance.evictAfterEvacuation,
// deadline maintenance.drainDeadlineSeconds). The migration controller does the moving and the
// evictions; `kubectl drain` then finds the node empty, or its own evictions pass the budget
// because the evacuated pods are already gone. A migration that ends without success gets a
// Warning Event on the pool saying why and what is left; the pool's DrainBlocked condition is
// derived from the drain migrations by the pool reconciler, the only writer of pool status.
// The annotation dspex.io/force-drain=true on the Node is copied to its migrations (force).
// This controller only creates, deletes and annotates migrations and records Events.
import {
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { GROUP, POOL_LABEL, SESSION_MIGRATION_PLURAL, VERSION, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { runWorkers, type Workers } from '../../kube/controller.ts';
import { isConflict, isNotFound } from '../../kube/errors.ts';
import { shareConnections } from '../../kube/connections.ts';
import { EventRecorder } from '../../kube/events.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { isTerminal } from '../migration/phases.ts';
import { WORKER_COMPONENT_LABEL, poolPodsOnNode } from '../migration/resolve.ts';
import { FORCE_DRAIN_ANNOTATION, isForced } from '../migration/runner.ts';
import { jitteredResync, onChange, type Resync } from '../shared/handlers.ts';
import type { SharedInformers } from '../shared/informers.ts';
import { DRAIN_NODE_LABEL, blockedMessage, decide, drainMigration, drainMigrationName, nodeDrainState } from './detect.ts';

export const DRAIN_CONTROLLER = 'nodedrain';

export interface DrainControllerOptions {
  kubeConfig: KubeConfig;
  /** The operator's informers (one watch and cache per resource, shared with the other controllers). */
  informers: SharedInformers;
  registry?: Registry;
  logger?: Logger;
  identity?: string;
  /** Taint keys that mean "drain" besides the built-in ones. */
  extraDrainTaints?: string[];
  /** Re-enqueue the draining nodes about this often (± 10 %). Default 10 min; 0 disables. */
  resyncMs?: number;
}

export interface RunningDrainController {
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** The node a drain migration is about (its annotation or label), if it is one. */
function drainNodeOf(m: SessionMigration): string | undefined {
  const labels = m.metadata?.labels ?? {};
  if (labels[DRAIN_NODE_LABEL] === undefined) return undefined;
  return m.metadata?.annotations?.['dspex.io/node'] ?? labels[DRAIN_NODE_LABEL];
}

export function startDrainController(options: DrainControllerOptions): RunningDrainController {
  const kc = shareConnections(options.kubeConfig);
  const log = options.logger ?? createLogger('drain-controller');
  const custom = kc.makeApiClient(CustomObjectsApi);
  const registry = options.registry;
  const events = new EventRecorder({
    api: kc.makeApiClient(EventsV1Api),
    reportingController: 'session-pool-operator',
    reportingInstance: options.identity ?? 'session-pool-operator',
    logger: log,
  });
  const { nodes, pools, migrations, pods } = options.informers;
  /** Drain migrations only (the shared cache holds every migration). */
  const drainMigrationNamed = (name: string, namespace: string) => {
    const m = migrations.get(name, namespace);
    return m && drainNodeOf(m) !== undefined ? m : undefined;
  };

  /**
   * Nodes a pool or pod change can matter to: draining ones (a migration may be due) and those
   * named by a drain migration (one to report or delete). Elsewhere reconcile() has nothing to
   * do, so pod churn on ordinary nodes (rollouts) wakes nothing; a node that starts draining is
   * enqueued by its own event and reads the pods then.
   */
  const relevant = (node: string | undefined): boolean => {
    if (!node) return false;
    const n = nodes.get(node);
    if (n && nodeDrainState(n, options.extraDrainTaints).draining) return true;
    return migrations.list().some((m) => drainNodeOf(m) === node);
  };
  const queue = new WorkQueue({ name: DRAIN_CONTROLLER, ...(registry ? { registry } : {}) });
  const enqueue = (key: string, why: string) => {
    log.debug({ node: key, why }, 'enqueued');
    queue.add(key);
  };
  // Only what decide() and the reconcile read: a node's drain state and force annotation (not
  // its status heartbeats); a pool's identity and maintenance settings (not its status); a
  // pool pod's node, pool and deletion; a drain migration's phase and force.
  const unsubscribe = [
    nodes.on(
      onChange<V1Node>(
        (n) => JSON.stringify([n.metadata?.uid, nodeDrainState(n, options.extraDrainTaints), isForced(n)]),
        (n) => n.metadata?.name,
        enqueue,
        nodes.list(),
      ),
    ),
    pools.on(
      onChange<SessionPool>(
        (p) => JSON.stringify([p.metadata.uid, p.metadata.deletionTimestamp ?? null, p.spec.maintenance ?? null]),
        () => nodes.keys().filter(relevant),
        enqueue,
        pools.list(),
      ),
    ),
    migrations.on(
      onChange<SessionMigration>(
        (m) =>
          JSON.stringify([
            m.metadata.uid,
            m.metadata.deletionTimestamp ?? null,
            m.status?.phase,
            m.metadata.annotations?.[FORCE_DRAIN_ANNOTATION],
          ]),
        drainNodeOf,
        enqueue,
        migrations.list(),
      ),
    ),
    pods.on(
      onChange<V1Pod>(
        (p) =>
          JSON.stringify([
            p.metadata?.uid,
            p.spec?.nodeName,
            p.metadata?.labels?.[POOL_LABEL],
            p.metadata?.labels?.[WORKER_COMPONENT_LABEL],
            p.metadata?.deletionTimestamp ?? null,
          ]),
        (p) => (relevant(p.spec?.nodeName) ? p.spec?.nodeName : undefined),
        enqueue,
        pods.list(),
      ),
    ),
  ];
  /** (pool uid, node, migration uid) already reported, so a report is made once per outcome. */
  const reported = new Set<string>();

  const reconcile = async (nodeName: string): Promise<void> => {
    const node = nodes.get(nodeName);
    const state = node ? nodeDrainState(node, options.extraDrainTaints) : { draining: false, reason: 'node gone' };
    const force = node ? isForced(node) : false;
    for (const pool of pools.list()) {
      const namespace = pool.metadata.namespace ?? 'default';
      const poolName = pool.metadata.name ?? '';
      const name = drainMigrationName(poolName, nodeName);
      const existing = drainMigrationNamed(name, namespace);
      const onNode = poolPodsOnNode(pods.list(namespace), poolName, nodeName);
      const decision = decide({
        state,
        evacuateOnCordon: pool.spec.maintenance?.evacuateOnCordon ?? true,
        podsOnNode: onNode.length,
        ...(existing
          ? {
              existing: {
                terminal: isTerminal(existing.status?.phase),
                ...(existing.status?.phase ? { phase: existing.status.phase } : {}),
              },
            }
          : {}),
      });
      switch (decision.action) {
        case 'create': {
          const body = drainMigration(pool, nodeName, { force });
          try {
            await custom.createNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: SESSION_MIGRATION_PLURAL,
              namespace,
              body,
            });
            log.info({ node: nodeName, pool: poolName, pods: onNode.length, reason: state.reason }, 'node draining: evacuation created');
            events.record(
              pool,
              'Normal',
              'NodeDrain',
              `node ${nodeName} is draining (${state.reason}): evacuating ${onNode.map((p) => p.metadata?.name).join(', ')} (SessionMigration ${name})`,
            );
          } catch (error) {
            if (!isConflict(error)) throw error; // 409: it exists already (the cache lags)
          }
          break;
        }
        case 'delete':
          try {
            await custom.deleteNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: SESSION_MIGRATION_PLURAL,
              namespace,
              name,
            });
          } catch (error) {
            if (!isNotFound(error)) throw error;
          }
          break;
        case 'report-blocked': {
          const m = existing!;
          const key = `${pool.metadata.uid}/${nodeName}/${m.metadata.uid}/blocked`;
          if (!reported.has(key)) {
            const message = blockedMessage(
              nodeName,
              m,
              onNode.map((p) => p.metadata?.name ?? ''),
            );
            events.record(pool, 'Warning', 'DrainBlocked', message);
            reported.add(key);
          }
          break;
        }
        case 'report-done': {
          const key = `${pool.metadata.uid}/${nodeName}/${existing!.metadata.uid}/done`;
          if (!reported.has(key)) {
            events.record(pool, 'Normal', 'NodeDrainEvacuated', `pods of node ${nodeName} evacuated (SessionMigration ${name})`);
            reported.add(key);
          }
          break;
        }
        case 'none':
          break;
      }
      // Force on the node reaches its migration (the migration controller then releases and evicts).
      if (force && existing && !isForced(existing)) {
        await custom.patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            plural: SESSION_MIGRATION_PLURAL,
            namespace,
            name,
            body: { metadata: { annotations: { [FORCE_DRAIN_ANNOTATION]: 'true' } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      }
    }
  };

  let workers: Workers | undefined;
  let resync: Resync | undefined;
  const ready = (async () => {
    await Promise.all([nodes.waitForSync(), pools.waitForSync(), migrations.waitForSync(), pods.waitForSync()]);
    for (const node of nodes.keys()) queue.add(node);
    workers = runWorkers(queue, reconcile, {
      concurrency: 2,
      controller: DRAIN_CONTROLLER,
      ...(registry ? { registry } : {}),
      logger: log,
    });
    // Level-triggering matters only where a migration must exist: the draining nodes.
    resync = jitteredResync(
      options.resyncMs ?? 600_000,
      () =>
        nodes
          .list()
          .filter((n) => nodeDrainState(n, options.extraDrainTaints).draining)
          .map((n) => n.metadata?.name ?? ''),
      (key, delayMs) => queue.addAfter(key, delayMs),
    );
  })();
  return {
    ready,
    async stop(): Promise<void> {
      for (const off of unsubscribe) off();
      resync?.stop();
      if (workers) await workers.stop(5_000);
      else await queue.shutdown(0);
      await events.flush().catch(() => undefined);
    },
  };
}
