// Wires the SessionPool reconciler: informer events become pool keys on one de-duplicating
// work queue (handlers only enqueue), a jittered resync re-enqueues every pool (default every
// 10 min, each pool at its own time), and runWorkers reconciles up to `concurrency` pools in
// parallel, one key never twice at once. Only changes that can alter what the reconciler does
// or writes enqueue (each resource has a signature of the fields the reconciler reads):
//   SessionPool            -> its own key, at the front of the queue (someone waits on a spec edit)
//   SessionMigration       -> spec.poolRef (same namespace): phase, reason, conditions
//   Deployment/Service/PDB -> the SessionPool in its controller ownerReference: our hash,
//                             replicas, generation, rollout status
//   Pod                    -> the dspex.io/pool label: phase, ready, deletion, node
//   Node (cordon, taints)  -> every pool with a pod on the node
// Events from children and pods are coalesced: the key is added after coalesceMs, so the burst
// of events of one rollout step makes one reconcile. The Sweeper runs each pool's store sweep and
// reads its session counts (Redis has no watch); the pool is enqueued only when the counts would
// change its status or scaling (refresh.ts). Why a key was enqueued is logged at debug.
import type { KubernetesObject, V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import { POOL_LABEL, SESSION_POOL_KIND, type SessionMigration } from '../../api/index.ts';
import { runWorkers, type Workers } from '../../kube/controller.ts';
import { errorMessage } from '../../kube/errors.ts';
import { Gauge, type Registry } from 'prom-client';
import { defaultRegistry } from '../../observability/metrics.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { jitteredResync, onChange, type Resync } from '../shared/handlers.ts';
import type { SharedInformers } from '../shared/informers.ts';

export { onChange } from '../shared/handlers.ts';
import type { PoolApi } from './client.ts';
import type { WorkerNetworkPolicySettings } from './network-policy.ts';
import { PoolMetrics } from './metrics.ts';
import { CONTROLLER_NAME, storePoolId } from './names.ts';
import { APPLIED_HASH_ANNOTATION, PoolReconciler, type EventSink, type PoolReconcilerDeps } from './reconciler.ts';
import { isPodReady } from './status.ts';
import { POD_DELETION_COST_ANNOTATION } from './names.ts';
import { countsChange } from './refresh.ts';
import { readCounts } from './sessions.ts';
import { Sweeper } from './sweeper.ts';
import { StoreClients } from './store-clients.ts';

export interface PoolControllerOptions {
  informers: SharedInformers;
  api: PoolApi;
  events: EventSink;
  concurrency?: number;
  registry?: Registry;
  logger?: Logger;
  /** Re-enqueue every pool about this often (± 10 %, spread over a tenth of it). Default 10 min; 0 disables. */
  resyncMs?: number;
  /** Events of children, pods and migrations enqueue their pool after this delay (coalescing). Default 200 ms. */
  coalesceMs?: number;
  /** Reconciler tuning (autoscale interval, evacuation retry ...). */
  tuning?: Pick<PoolReconcilerDeps, 'autoscaleIntervalMs' | 'reapplyIntervalMs' | 'evacuationRetryMs' | 'evacuationPollMs'>;
  /** Store call timeout. Default 5 s. */
  storeTimeoutMs?: number;
  /** Generate each pool's worker NetworkPolicy (needs informers.networkPolicies). */
  workerNetworkPolicy?: WorkerNetworkPolicySettings;
}

function ownerPoolKey(obj: KubernetesObject): string | undefined {
  const ref = (obj.metadata?.ownerReferences ?? []).find((r) => r.controller && r.kind === SESSION_POOL_KIND);
  return ref && obj.metadata?.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

const uids = (obj: KubernetesObject) => (obj.metadata?.ownerReferences ?? []).map((r) => r.uid);

/** What of a Deployment the reconciler reads (status.ts, children.ts). */
export function deploymentSignature(d: V1Deployment): string {
  const conditions = (d.status?.conditions ?? [])
    .filter((c) => c.type === 'ReplicaFailure' || c.type === 'Progressing')
    .map((c) => [c.type, c.status, c.reason, c.type === 'ReplicaFailure' || c.reason === 'ProgressDeadlineExceeded' ? c.message : '']);
  const st = d.status;
  return JSON.stringify([
    d.metadata?.uid,
    d.metadata?.generation,
    d.metadata?.deletionTimestamp ?? null,
    d.metadata?.annotations?.[APPLIED_HASH_ANNOTATION],
    uids(d),
    d.spec?.replicas,
    [st?.observedGeneration, st?.replicas, st?.readyReplicas, st?.updatedReplicas],
    conditions,
  ]);
}

/** Service, PDB: only our hash and the owner matter (their status is not read). */
export function childSignature(obj: KubernetesObject): string {
  return JSON.stringify([
    obj.metadata?.uid,
    obj.metadata?.deletionTimestamp ?? null,
    obj.metadata?.annotations?.[APPLIED_HASH_ANNOTATION],
    uids(obj),
  ]);
}

/** What of a pool's pod the reconciler reads: liveness, readiness, node, deletion cost. */
export function podSignature(pod: V1Pod): string {
  return JSON.stringify([
    pod.metadata?.uid,
    pod.status?.phase,
    isPodReady(pod),
    pod.metadata?.deletionTimestamp ?? null,
    pod.spec?.nodeName,
    pod.metadata?.annotations?.[POD_DELETION_COST_ANNOTATION],
  ]);
}

/** What of a migration the reconciler reads (scale-down evacuation, DrainBlocked). */
export function migrationSignature(m: SessionMigration): string {
  const st = m.status;
  return JSON.stringify([
    m.metadata.uid,
    m.metadata.deletionTimestamp ?? null,
    m.metadata.labels ?? {},
    m.spec?.evacuate?.pods ?? [],
    [st?.phase, st?.reason, st?.message, st?.completionTime],
    (st?.conditions ?? []).map((c) => [c.type, c.status]),
  ]);
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
  private sweeper: Sweeper | undefined;
  private resync: Resync | undefined;
  /** When each pool was last swept (the count check may run more often than the sweep). */
  private readonly swept = new Map<string, number>();
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
    const coalesceMs = options.coalesceMs ?? 200;
    // Children, pods and migrations: coalesced, behind nothing urgent.
    const soon = (key: string, why: string) => {
      const queue = this.queue;
      if (!queue || queue.isQueued(key)) return;
      this.log.debug({ pool: key, why }, 'enqueued');
      queue.addAfter(key, coalesceMs);
    };
    // Our own status writes come back as update events: only a change of the spec (generation)
    // or of the metadata the reconciler acts on (deletion, finalizers, labels, annotations)
    // needs a reconcile (controller-runtime's GenerationChangedPredicate, plus metadata).
    const seen = new Map<string, string>();
    informers.pools.on((event, pool) => {
      const key = `${pool.metadata.namespace}/${pool.metadata.name}`;
      if (event === 'delete') {
        seen.delete(key);
        this.queue?.add(key);
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
      if (event !== 'add' && seen.get(key) === signature) return;
      seen.set(key, signature);
      // A spec edit goes ahead of routine status refreshes: its latency is what users see.
      if (this.queue) this.log.debug({ pool: key, why: `SessionPool ${event}` }, 'enqueued');
      this.queue?.addFirst(key);
    });
    informers.migrations.on(
      onChange<SessionMigration>(
        migrationSignature,
        (m) => (m.metadata.namespace && m.spec?.poolRef?.name ? `${m.metadata.namespace}/${m.spec.poolRef.name}` : undefined),
        soon,
      ),
    );
    informers.deployments.on(onChange<V1Deployment>(deploymentSignature, ownerPoolKey, soon));
    for (const informer of [informers.services, informers.pdbs, ...(informers.networkPolicies ? [informers.networkPolicies] : [])])
      informer.on(onChange<KubernetesObject>(childSignature, ownerPoolKey, soon));
    informers.pods.on(
      onChange<V1Pod>(
        podSignature,
        (pod) => {
          const pool = pod.metadata?.labels?.[POOL_LABEL];
          return pool && pod.metadata?.namespace ? `${pod.metadata.namespace}/${pool}` : undefined;
        },
        soon,
      ),
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
        if (pod.spec?.nodeName === name && pool && pod.metadata?.namespace)
          soon(`${pod.metadata.namespace}/${pool}`, `Node ${name} changed`);
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
    const sweeper = new Sweeper({ sweep: (key) => this.sweep(key) });
    this.sweeper = sweeper;
    sweeper.start();
    this.reconciler = new PoolReconciler({
      sweeps: sweeper,
      api: this.options.api,
      pools: informers.pools,
      deployments: informers.deployments,
      services: informers.services,
      pdbs: informers.pdbs,
      pods: informers.pods,
      migrations: informers.migrations,
      ...(this.options.workerNetworkPolicy && informers.networkPolicies
        ? { workerNetworkPolicy: this.options.workerNetworkPolicy, networkPolicies: informers.networkPolicies }
        : {}),
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
    // The safety net of a level-triggered controller: every pool about every resyncMs (± 10 %),
    // each after a random delay within a tenth of the period (at most a minute).
    const queue = this.queue;
    this.resync = jitteredResync(
      this.options.resyncMs ?? 600_000,
      () => informers.pools.keys(),
      (key, delayMs) => queue.addAfter(key, delayMs),
    );
    this.log.info({ pools: informers.pools.keys().length }, 'pool controller started');
  }

  /**
   * One pool's periodic work (from the Sweeper): the store sweep every sweep interval, and a
   * read of its counts every time (autoscaled pools come more often, every autoscale interval).
   * Store calls only; the pool is enqueued only when the counts would change its status or
   * scaling (refresh.ts), so an idle pool makes no reconcile and no apiserver call.
   */
  private async sweep(key: string): Promise<void> {
    const pool = this.options.informers.pools.getByKey(key);
    if (!pool || pool.metadata.deletionTimestamp) {
      this.sweeper?.forget(key);
      this.swept.delete(key);
      return;
    }
    const name = pool.metadata.name ?? '';
    const namespace = pool.metadata.namespace ?? 'default';
    let counts;
    try {
      const store = await this.stores.forPool(key, pool);
      const now = Date.now();
      const sweepMs = pool.spec.sessions.sweepIntervalSeconds * 1000;
      // 5 % slack: a check that comes a little early (timer jitter) still sweeps.
      if (now - (this.swept.get(key) ?? 0) >= sweepMs * 0.95) {
        this.swept.set(key, now);
        const result = await this.stores.call('sweep', store.sweep(storePoolId(pool)));
        if (result.expired > 0 || result.leasesReleased > 0) this.log.debug({ pool: key, ...result }, 'swept');
      }
      counts = await this.stores.call('counts', readCounts(store, storePoolId(pool)));
    } catch (err) {
      this.log.warn({ pool: key, err: errorMessage(err) }, 'sweep failed');
    }
    const pods = this.options.informers.pods.list(namespace).filter((p) => p.metadata?.labels?.[POOL_LABEL] === name);
    const why = countsChange(this.options.informers.pools.getByKey(key) ?? pool, pods, counts);
    const queue = this.queue;
    if (why && queue && !queue.isQueued(key)) {
      this.log.debug({ pool: key, why }, 'enqueued');
      queue.add(key);
    }
  }

  /** Stops taking keys and waits for the reconciles in flight (at most timeoutMs). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.resync?.stop();
    this.resync = undefined;
    this.swept.clear();
    const sweeper = this.sweeper;
    this.sweeper = undefined;
    const workers = this.workers;
    this.workers = undefined;
    this.queue = undefined;
    this.reconciler = undefined;
    if (workers) await workers.stop(timeoutMs);
    await sweeper?.stop();
    this.log.info('pool controller stopped');
  }

  /** Closes the store clients (at process exit). */
  async close(): Promise<void> {
    await this.stop();
    await this.stores.closeAll();
  }
}
