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
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  GROUP,
  POOL_LABEL,
  SESSION_MIGRATION_PLURAL,
  SESSION_POOL_PLURAL,
  VERSION,
  type SessionMigration,
  type SessionPool,
} from '../../api/index.ts';
import { runWorkers, type Workers } from '../../kube/controller.ts';
import { isConflict, isNotFound } from '../../kube/errors.ts';
import { shareConnections } from '../../kube/connections.ts';
import { EventRecorder } from '../../kube/events.ts';
import { Informer, objectKey } from '../../kube/informer.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { customLister } from '../migration/lists.ts';
import { isTerminal } from '../migration/phases.ts';
import { poolPodsOnNode } from '../migration/resolve.ts';
import { FORCE_DRAIN_ANNOTATION, isForced } from '../migration/runner.ts';
import { DRAIN_NODE_LABEL, blockedMessage, decide, drainMigration, drainMigrationName, nodeDrainState } from './detect.ts';

export const DRAIN_CONTROLLER = 'nodedrain';

export interface DrainControllerOptions {
  kubeConfig: KubeConfig;
  registry?: Registry;
  logger?: Logger;
  identity?: string;
  /** Taint keys that mean "drain" besides the built-in ones. */
  extraDrainTaints?: string[];
}

export interface RunningDrainController {
  ready: Promise<void>;
  stop(): Promise<void>;
}

export function startDrainController(options: DrainControllerOptions): RunningDrainController {
  const kc = shareConnections(options.kubeConfig);
  const log = options.logger ?? createLogger('drain-controller');
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const registry = options.registry;
  const events = new EventRecorder({
    api: kc.makeApiClient(EventsV1Api),
    reportingController: 'session-pool-operator',
    reportingInstance: options.identity ?? 'session-pool-operator',
    logger: log,
  });
  const common = { kubeConfig: kc, ...(registry ? { registry } : {}), logger: log };
  const nodes = new Informer<V1Node>({
    ...common,
    resource: 'nodes',
    path: '/api/v1/nodes',
    list: (o) => core.listNode(o),
    resyncMs: 30_000,
  });
  const pools = new Informer<SessionPool>({
    ...common,
    resource: SESSION_POOL_PLURAL,
    path: `/apis/${GROUP}/${VERSION}/${SESSION_POOL_PLURAL}`,
    list: customLister<SessionPool>(custom, SESSION_POOL_PLURAL),
  });
  const migrations = new Informer<SessionMigration>({
    ...common,
    resource: SESSION_MIGRATION_PLURAL,
    path: `/apis/${GROUP}/${VERSION}/${SESSION_MIGRATION_PLURAL}`,
    labelSelector: DRAIN_NODE_LABEL,
    list: customLister<SessionMigration>(custom, SESSION_MIGRATION_PLURAL),
  });
  const pods = new Informer<V1Pod>({
    ...common,
    resource: 'pods',
    path: '/api/v1/pods',
    labelSelector: POOL_LABEL,
    list: (o) => core.listPodForAllNamespaces(o),
  });

  const queue = new WorkQueue({ name: DRAIN_CONTROLLER, ...(registry ? { registry } : {}) });
  nodes.on((_event, node) => queue.add(objectKey(node)));
  migrations.on((_event, m) => {
    const node = m.metadata?.annotations?.['dspex.io/node'] ?? m.metadata?.labels?.[DRAIN_NODE_LABEL];
    if (node) queue.add(node);
  });
  pools.on(() => {
    for (const node of nodes.keys()) queue.add(node);
  });
  pods.on((_event, pod) => {
    if (pod.spec?.nodeName) queue.add(pod.spec.nodeName);
  });
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
      const existing = migrations.get(name, namespace);
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
  for (const informer of [nodes, pools, migrations, pods] as { start(): void }[]) informer.start();
  const ready = (async () => {
    await Promise.all([nodes.waitForSync(), pools.waitForSync(), migrations.waitForSync(), pods.waitForSync()]);
    for (const node of nodes.keys()) queue.add(node);
    workers = runWorkers(queue, reconcile, {
      concurrency: 2,
      controller: DRAIN_CONTROLLER,
      ...(registry ? { registry } : {}),
      logger: log,
    });
  })();
  return {
    ready,
    async stop(): Promise<void> {
      if (workers) await workers.stop(5_000);
      else await queue.shutdown(0);
      await Promise.all([nodes.stop(), pools.stop(), migrations.stop(), pods.stop()]);
    },
  };
}
