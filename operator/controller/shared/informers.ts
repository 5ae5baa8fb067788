// The informers the operator's controllers share: one list/watch per resource for the whole
// process, scoped to one namespace or all. Children and pods are filtered by label at the
// apiserver so the caches hold only what the operator manages.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  PolicyV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Deployment,
  type V1NetworkPolicy,
  type V1Node,
  type V1Pod,
  type V1PodDisruptionBudget,
  type V1Service,
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
import { shareConnections } from '../../kube/connections.ts';
import { Informer, type ListOptions } from '../../kube/informer.ts';
import { APPLIED_HASH_ANNOTATION as APPLIED_HASH, FORCE_DRAIN_ANNOTATION, POD_DELETION_COST_ANNOTATION } from '../pool/names.ts';

/** Children the operator manages carry this label (see controller/pool/names.ts). */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=session-pool-operator';

export interface SharedInformers {
  pools: Informer<SessionPool>;
  migrations: Informer<SessionMigration>;
  deployments: Informer<V1Deployment>;
  services: Informer<V1Service>;
  pdbs: Informer<V1PodDisruptionBudget>;
  pods: Informer<V1Pod>;
  nodes: Informer<V1Node>;
  /** The pools' worker NetworkPolicies; only when the operator generates them. */
  networkPolicies?: Informer<V1NetworkPolicy>;
  all(): Informer<KubernetesObject>[];
  start(): void;
  stop(): Promise<void>;
  waitForSync(timeoutMs?: number): Promise<void>;
  hasSynced(): boolean;
}

export interface SharedInformersOptions {
  /** Watch one namespace; empty or undefined: all namespaces. */
  namespace?: string;
  /**
   * Re-emit every cached object this often. Default 0 (off): the controllers re-enqueue their
   * own keys on a jittered schedule, and a re-emit of every pod would only wake them for nothing.
   */
  resyncMs?: number;
  watchdogMs?: number;
  registry?: Registry;
  /** Watch the NetworkPolicies the operator manages (--worker-network-policy). */
  networkPolicies?: boolean;
}

/** kubectl apply's copy of the whole object as applied: as large as the spec, never read here. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Watch objects as plain JSON, without managedFields (often the larger half of an object, never
 * read by the controllers) and without kubectl's last-applied-configuration annotation (a second
 * copy of the spec): less memory in the caches and no class construction per event.
 * Timestamps stay RFC 3339 strings; readers accept both strings and Dates.
 */
export function leanDeserialize<T>(raw: unknown): T {
  const meta = (raw as KubernetesObject)?.metadata;
  if (meta?.managedFields) delete meta.managedFields;
  if (meta?.annotations?.[LAST_APPLIED_ANNOTATION] !== undefined) {
    delete meta.annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  return raw as T;
}

type Meta = NonNullable<KubernetesObject['metadata']>;

/** The metadata the controllers read; annotations only those named. */
function leanMeta(meta: Meta | undefined, annotations: readonly string[]): Meta {
  const m = meta ?? {};
  const out: Meta = { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion };
  if (m.generation !== undefined) out.generation = m.generation;
  if (m.labels) out.labels = m.labels;
  if (m.ownerReferences) out.ownerReferences = m.ownerReferences;
  if (m.deletionTimestamp) out.deletionTimestamp = m.deletionTimestamp;
  if (m.creationTimestamp) out.creationTimestamp = m.creationTimestamp;
  const kept = annotations.filter((a) => m.annotations?.[a] !== undefined);
  if (kept.length > 0) out.annotations = Object.fromEntries(kept.map((a) => [a, m.annotations?.[a] as string]));
  return out;
}

/**
 * Cached objects hold only what the controllers read (pool: controller.ts signatures,
 * status.ts, reconciler.ts; migration: resolve.ts, runner.ts; drain: detect.ts): a pod's
 * labels, phase, Ready condition, node, deletion and deletion cost; a Deployment's replicas,
 * our hash and its status, not its pod template; a Service's or PDB's identity and our hash; a
 * Node's schedulability, taints and force-drain annotation, not its status (image lists,
 * heartbeats). Pools and migrations are kept whole (without managedFields). Raw objects are
 * garbage right after, so the caches stay small however big the objects are.
 */
export const lean = {
  pod: (raw: unknown): V1Pod => {
    const pod = raw as V1Pod;
    const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
    return {
      apiVersion: pod.apiVersion ?? 'v1',
      kind: pod.kind ?? 'Pod',
      metadata: leanMeta(pod.metadata, [POD_DELETION_COST_ANNOTATION]),
      spec: { containers: [], ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}) },
      status: {
        ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
        conditions: ready ? [{ type: 'Ready', status: ready.status }] : [],
      },
    };
  },
  deployment: (raw: unknown): V1Deployment => {
    const d = raw as V1Deployment;
    return {
      apiVersion: d.apiVersion ?? 'apps/v1',
      kind: d.kind ?? 'Deployment',
      metadata: leanMeta(d.metadata, [APPLIED_HASH]),
      spec: { ...(d.spec?.replicas !== undefined ? { replicas: d.spec.replicas } : {}), selector: {}, template: {} },
      ...(d.status ? { status: d.status } : {}),
    };
  },
  child: <T extends KubernetesObject>(raw: unknown): T => {
    const o = raw as KubernetesObject;
    return { apiVersion: o.apiVersion, kind: o.kind, metadata: leanMeta(o.metadata, [APPLIED_HASH]) } as T;
  },
  node: (raw: unknown): V1Node => {
    const n = raw as V1Node;
    return {
      apiVersion: n.apiVersion ?? 'v1',
      kind: n.kind ?? 'Node',
      metadata: leanMeta(n.metadata, [FORCE_DRAIN_ANNOTATION]),
      spec: {
        ...(n.spec?.unschedulable !== undefined ? { unschedulable: n.spec.unschedulable } : {}),
        ...(n.spec?.taints ? { taints: n.spec.taints } : {}),
      },
    };
  },
};

async function leanList<T extends KubernetesObject, L extends { items: T[] }>(list: Promise<L>, project: (raw: unknown) => T): Promise<L> {
  const result = await list;
  result.items = result.items.map((item) => project(item));
  return result;
}

export function createSharedInformers(kubeConfig: KubeConfig, options: SharedInformersOptions = {}): SharedInformers {
  const kc = shareConnections(kubeConfig);
  const ns = options.namespace || undefined;
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const common = {
    kubeConfig: kc,
    resyncMs: options.resyncMs ?? 0,
    ...(options.watchdogMs !== undefined ? { watchdogMs: options.watchdogMs } : {}),
    ...(options.registry ? { registry: options.registry } : {}),
  };
  const path = (group: string, plural: string) => {
    const base = group === '' ? '/api/v1' : `/apis/${group}`;
    return ns ? `${base}/namespaces/${ns}/${plural}` : `${base}/${plural}`;
  };
  const customInformer = <T extends KubernetesObject>(plural: string) =>
    new Informer<T>({
      ...common,
      deserialize: leanDeserialize,
      resource: plural,
      path: path(`${GROUP}/${VERSION}`, plural),
      // Listed objects are leaned too: a relist (start, 410, watchdog) fills the cache from here.
      list: (o: ListOptions) =>
        leanList(
          (ns
            ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural, ...o })
            : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...o })) as Promise<KubernetesListObject<T>>,
          (raw) => leanDeserialize<T>(raw),
        ),
    });

  const pools = customInformer<SessionPool>(SESSION_POOL_PLURAL);
  const migrations = customInformer<SessionMigration>(SESSION_MIGRATION_PLURAL);
  const deployments = new Informer<V1Deployment>({
    ...common,
    resource: 'deployments',
    path: path('apps/v1', 'deployments'),
    labelSelector: MANAGED_SELECTOR,
    deserialize: lean.deployment,
    list: (o) =>
      leanList(ns ? apps.listNamespacedDeployment({ namespace: ns, ...o }) : apps.listDeploymentForAllNamespaces(o), lean.deployment),
  });
  const services = new Informer<V1Service>({
    ...common,
    resource: 'services',
    path: path('', 'services'),
    labelSelector: MANAGED_SELECTOR,
    deserialize: lean.child<V1Service>,
    list: (o) =>
      leanList(ns ? core.listNamespacedService({ namespace: ns, ...o }) : core.listServiceForAllNamespaces(o), lean.child<V1Service>),
  });
  const pdbs = new Informer<V1PodDisruptionBudget>({
    ...common,
    resource: 'poddisruptionbudgets',
    path: path('policy/v1', 'poddisruptionbudgets'),
    labelSelector: MANAGED_SELECTOR,
    deserialize: lean.child<V1PodDisruptionBudget>,
    list: (o) =>
      leanList(
        ns ? policy.listNamespacedPodDisruptionBudget({ namespace: ns, ...o }) : policy.listPodDisruptionBudgetForAllNamespaces(o),
        lean.child<V1PodDisruptionBudget>,
      ),
  });
  const pods = new Informer<V1Pod>({
    ...common,
    resource: 'pods',
    path: path('', 'pods'),
    labelSelector: POOL_LABEL,
    deserialize: lean.pod,
    list: (o) => leanList(ns ? core.listNamespacedPod({ namespace: ns, ...o }) : core.listPodForAllNamespaces(o), lean.pod),
  });
  const nodes = new Informer<V1Node>({
    ...common,
    resource: 'nodes',
    path: '/api/v1/nodes',
    deserialize: lean.node,
    list: (o) => leanList(core.listNode(o), lean.node),
  });

  const networking = kc.makeApiClient(NetworkingV1Api);
  const networkPolicies = options.networkPolicies
    ? new Informer<V1NetworkPolicy>({
        ...common,
        resource: 'networkpolicies',
        path: path('networking.k8s.io/v1', 'networkpolicies'),
        labelSelector: MANAGED_SELECTOR,
        deserialize: lean.child<V1NetworkPolicy>,
        list: (o) =>
          leanList(
            ns ? networking.listNamespacedNetworkPolicy({ namespace: ns, ...o }) : networking.listNetworkPolicyForAllNamespaces(o),
            lean.child<V1NetworkPolicy>,
          ),
      })
    : undefined;

  const list = [
    pools,
    migrations,
    deployments,
    services,
    pdbs,
    pods,
    nodes,
    ...(networkPolicies ? [networkPolicies] : []),
  ] as unknown as Informer<KubernetesObject>[];
  return {
    pools,
    migrations,
    deployments,
    services,
    pdbs,
    pods,
    nodes,
    ...(networkPolicies ? { networkPolicies } : {}),
    all: () => list,
    start: () => list.forEach((i) => i.start()),
    stop: async () => {
      await Promise.all(list.map((i) => i.stop()));
    },
    waitForSync: async (timeoutMs) => {
      await Promise.all(list.map((i) => i.waitForSync(timeoutMs)));
    },
    hasSynced: () => list.every((i) => i.hasSynced()),
  };
}
