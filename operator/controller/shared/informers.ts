// The informers the operator's controllers share: one list/watch per resource for the whole
// process, scoped to one namespace or all. Children and pods are filtered by label at the
// apiserver so the caches hold only what the operator manages.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PolicyV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Deployment,
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
import { Informer, type ListOptions } from '../../kube/informer.ts';

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
  all(): Informer<KubernetesObject>[];
  start(): void;
  stop(): Promise<void>;
  waitForSync(timeoutMs?: number): Promise<void>;
  hasSynced(): boolean;
}

export interface SharedInformersOptions {
  /** Watch one namespace; empty or undefined: all namespaces. */
  namespace?: string;
  resyncMs?: number;
  watchdogMs?: number;
  registry?: Registry;
}

/**
 * Watch objects as plain JSON, without managedFields (often the larger half of an object, never
 * read by the controllers): less memory in the caches and no class construction per event.
 * Timestamps stay RFC 3339 strings; readers accept both strings and Dates.
 */
export function leanDeserialize<T>(raw: unknown): T {
  const obj = raw as KubernetesObject;
  if (obj?.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj as T;
}

async function leanList<L extends { items: KubernetesObject[] }>(list: Promise<L>): Promise<L> {
  const result = await list;
  for (const item of result.items) if (item.metadata?.managedFields) delete item.metadata.managedFields;
  return result;
}

export function createSharedInformers(kc: KubeConfig, options: SharedInformersOptions = {}): SharedInformers {
  const ns = options.namespace || undefined;
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const common = {
    kubeConfig: kc,
    deserialize: leanDeserialize,
    ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
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
      resource: plural,
      path: path(`${GROUP}/${VERSION}`, plural),
      list: async (o: ListOptions) =>
        (ns
          ? await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural, ...o })
          : await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...o })) as KubernetesListObject<T>,
    });

  const pools = customInformer<SessionPool>(SESSION_POOL_PLURAL);
  const migrations = customInformer<SessionMigration>(SESSION_MIGRATION_PLURAL);
  const deployments = new Informer<V1Deployment>({
    ...common,
    resource: 'deployments',
    path: path('apps/v1', 'deployments'),
    labelSelector: MANAGED_SELECTOR,
    list: (o) => leanList(ns ? apps.listNamespacedDeployment({ namespace: ns, ...o }) : apps.listDeploymentForAllNamespaces(o)),
  });
  const services = new Informer<V1Service>({
    ...common,
    resource: 'services',
    path: path('', 'services'),
    labelSelector: MANAGED_SELECTOR,
    list: (o) => leanList(ns ? core.listNamespacedService({ namespace: ns, ...o }) : core.listServiceForAllNamespaces(o)),
  });
  const pdbs = new Informer<V1PodDisruptionBudget>({
    ...common,
    resource: 'poddisruptionbudgets',
    path: path('policy/v1', 'poddisruptionbudgets'),
    labelSelector: MANAGED_SELECTOR,
    list: (o) =>
      ns ? policy.listNamespacedPodDisruptionBudget({ namespace: ns, ...o }) : policy.listPodDisruptionBudgetForAllNamespaces(o),
  });
  const pods = new Informer<V1Pod>({
    ...common,
    resource: 'pods',
    path: path('', 'pods'),
    labelSelector: POOL_LABEL,
    list: (o) => leanList(ns ? core.listNamespacedPod({ namespace: ns, ...o }) : core.listPodForAllNamespaces(o)),
  });
  const nodes = new Informer<V1Node>({ ...common, resource: 'nodes', path: '/api/v1/nodes', list: (o) => leanList(core.listNode(o)) });

  const list = [pools, migrations, deployments, services, pdbs, pods, nodes] as unknown as Informer<KubernetesObject>[];
  return {
    pools,
    migrations,
    deployments,
    services,
    pdbs,
    pods,
    nodes,
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
