// Wires the SessionPool reconciler: informer events become pool keys on one de-duplicating
// work queue (handlers only enqueue), a periodic resync re-enqueues every pool, and runWorkers
// reconciles up to `concurrency` pools in parallel, one key never twice at once.
//   SessionPool            -> its own key
//   SessionMigration       -> spec.poolRef (same namespace)
//   Deployment/Service/PDB -> the SessionPool in its controller ownerReference
//   Pod                    -> the dspex.io/pool label
//   Node (cordon, taints)  -> every pool with a pod on the node
import type { KubernetesObject, V1Node, V1Pod } from '@kubernetes/client-node';
import { POOL_LABEL, SESSION_POOL_KIND, type SessionMigration } from '../../api/index.ts';
import { runWorkers, type Workers } from '../../kube/controller.ts';
import { enqueueKeys } from '../../kube/informer.ts';
import { Gauge, type Registry } from 'prom-client';
import { defaultRegistry } from '../../observability/metrics.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import type { SharedInformers } from '../shared/informers.ts';
import type { PoolApi } from './client.ts';
import { PoolMetrics } from './metrics.ts';
import { CONTROLLER_NAME } from './names.ts';
import { PoolReconciler, type EventSink, type PoolReconcilerDeps } from './reconciler.ts';
import { StoreClients } from './store-clients.ts';

export interface PoolControllerOptions {
  informers: SharedInformers;
  api: PoolApi;
  events: EventSink;
  concurrency?: number;
  registry?: Registry;
  logger?: Logger;
  /** Re-enqueue every pool this often. Default 5 min. */
  resyncMs?: number;
  /** Reconciler tuning (autoscale interval, evacuation retry ...). */
  tuning?: Pick<PoolReconcilerDeps, 'autoscaleIntervalMs' | 'reapplyIntervalMs' | 'evacuationRetryMs' | 'evacuationPollMs'>;
  /** Store call timeout. Default 5 s. */
  storeTimeoutMs?: number;
}

function ownerPoolKey(obj: KubernetesObject): string | undefined {
  const ref = (obj.metadata?.ownerReferences ?? []).find((r) => r.controller && r.kind === SESSION_POOL_KIND);
  return ref && obj.metadata?.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

function nodeState(node: V1Node): string {
  return JSON.stringify([
    node.spec?.unschedulable ?? false,
    (node.spec?.taints ?? []).map((t) => `${t.key}=${t.value ?? ''}:${t.effect}`).sort(),
  ]);
}

const depthSources = new WeakMap<Registry, Set<() => number>>();

/** spo_operator_queue_depth{controller}: a contract name of the chart's alerts, read at scrape time. */
function registerQueueDepth(registry: Registry | undefined, depth: () => number): void {
  const reg = registry ?? defaultRegistry();
  let sources = depthSources.get(reg);
  if (!sources) {
    const set = new Set<() => number>();
    sources = set;
    depthSources.set(reg, set);
    if (!reg.getSingleMetric('spo_operator_queue_depth')) {
      new Gauge({
        name: 'spo_operator_queue_depth',
        help: 'Keys waiting in the controller work queue',
        labelNames: ['controller'],
        registers: [reg],
        collect() {
          let total = 0;
          for (const source of set) total += source();
          this.set({ controller: CONTROLLER_NAME }, total);
        },
      });
    }
  }
  sources.add(depth);
}

/**
 * The pool controller. Informers are started by the caller (they stay warm on a standby);
 * start()/stop() run and stop the reconcile workers (on gaining and losing leadership).
 */
export class PoolController {
  private readonly options: PoolControllerOptions;
  private readonly log: Logger;
  readonly stores: StoreClients;
  private queue: WorkQueue | undefined;
  private workers: Workers | undefined;
  private reconciler: PoolReconciler | undefined;
  private resyncTimer: ReturnType<typeof setInterval> | undefined;
  private readonly nodeStates = new Map<string, string>();

  constructor(options: PoolControllerOptions) {
    this.options = options;
    this.log = options.logger ?? createLogger('pool-controller');
    const { informers } = options;
    this.stores = new StoreClients({
      readSecret: (namespace, name) => options.api.readSecret(namespace, name),
      ...(options.storeTimeoutMs !== undefined ? { timeoutMs: options.storeTimeoutMs } : {}),
      ...(options.registry ? { registry: options.registry } : {}),
      logger: this.log,
    });
    const add = { add: (key: string) => this.queue?.add(key) };
    // Our own status writes come back as update events: only a change of the spec (generation)
    // or of the metadata the reconciler acts on (deletion, finalizers, labels, annotations)
    // needs a reconcile (controller-runtime's GenerationChangedPredicate, plus metadata).
    const seen = new Map<string, string>();
    informers.pools.on((event, pool) => {
      const key = `${pool.metadata.namespace}/${pool.metadata.name}`;
      if (event === 'delete') {
        seen.delete(key);
        add.add(key);
        return;
      }
      const m = pool.metadata;
      const signature = JSON.stringify([
        m.uid,
        m.generation,
        m.deletionTimestamp ?? null,
        m.finalizers ?? [],
        m.labels ?? {},
        m.annotations ?? {},
      ]);
      if (event === 'update' && seen.get(key) === signature) return;
      seen.set(key, signature);
      add.add(key);
    });
    informers.migrations.on(
      enqueueKeys<SessionMigration>(add, (m) => (m.metadata.namespace ? `${m.metadata.namespace}/${m.spec?.poolRef?.name}` : undefined)),
    );
    for (const informer of [informers.deployments, informers.services, informers.pdbs])
      informer.on(enqueueKeys<KubernetesObject>(add, ownerPoolKey));
    informers.pods.on(
      enqueueKeys<V1Pod>(add, (pod) => {
        const pool = pod.metadata?.labels?.[POOL_LABEL];
        return pool && pod.metadata?.namespace ? `${pod.metadata.namespace}/${pool}` : undefined;
      }),
    );
    informers.nodes.on((event, node) => {
      const name = node.metadata?.name ?? '';
      if (event === 'delete') {
        this.nodeStates.delete(name);
        return;
      }
      const state = nodeState(node);
      const before = this.nodeStates.get(name);
      this.nodeStates.set(name, state);
      if (before === undefined || before === state) return;
      // Cordoned, uncordoned or tainted: the pools with pods there look again (the drain
      // controller acts on it; the pool recomputes its status).
      for (const pod of informers.pods.list()) {
        const pool = pod.metadata?.labels?.[POOL_LABEL];
        if (pod.spec?.nodeName === name && pool && pod.metadata?.namespace) this.queue?.add(`${pod.metadata.namespace}/${pool}`);
      }
    });
    registerQueueDepth(options.registry, () => this.queue?.depth() ?? 0);
  }

  isRunning(): boolean {
    return this.workers !== undefined;
  }

  queueDepth(): number {
    return this.queue?.depth() ?? 0;
  }

  /** Starts reconciling: every known pool is enqueued, then events and the resync feed the queue. */
  start(): void {
    if (this.workers) return;
    const { informers } = this.options;
    this.queue = new WorkQueue({ name: CONTROLLER_NAME, ...(this.options.registry ? { registry: this.options.registry } : {}) });
    this.reconciler = new PoolReconciler({
      api: this.options.api,
      pools: informers.pools,
      deployments: informers.deployments,
      services: informers.services,
      pdbs: informers.pdbs,
      pods: informers.pods,
      migrations: informers.migrations,
      stores: this.stores,
      events: this.options.events,
      metrics: new PoolMetrics(this.options.registry),
      logger: this.log,
      ...this.options.tuning,
    });
    const reconciler = this.reconciler;
    this.workers = runWorkers(this.queue, (key) => reconciler.reconcile(key), {
      concurrency: this.options.concurrency ?? 4,
      controller: CONTROLLER_NAME,
      ...(this.options.registry ? { registry: this.options.registry } : {}),
      logger: this.log,
    });
    for (const key of informers.pools.keys()) this.queue.add(key);
    const resyncMs = this.options.resyncMs ?? 300_000;
    if (resyncMs > 0) {
      this.resyncTimer = setInterval(() => {
        for (const key of informers.pools.keys()) this.queue?.add(key);
      }, resyncMs);
      this.resyncTimer.unref();
    }
    this.log.info({ pools: informers.pools.keys().length }, 'pool controller started');
  }

  /** Stops taking keys and waits for the reconciles in flight (at most timeoutMs). */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    const workers = this.workers;
    this.workers = undefined;
    this.queue = undefined;
    this.reconciler = undefined;
    if (workers) await workers.stop(timeoutMs);
    this.log.info('pool controller stopped');
  }

  /** Closes the store clients (at process exit). */
  async close(): Promise<void> {
    await this.stop();
    await this.stores.closeAll();
  }
}
