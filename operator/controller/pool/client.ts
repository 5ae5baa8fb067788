// The writes and direct reads the pool reconciler makes, behind one narrow interface so the
// reconciler can be unit-tested with a fake (reconciler.test.ts). Reads of pools, children,
// pods and migrations come from informer caches, never from here.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Secret,
} from '@kubernetes/client-node';
import { GROUP, SESSION_MIGRATION_PLURAL, SESSION_POOL_PLURAL, VERSION, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { apply, patchStatus } from '../../kube/apply.ts';
import { shareConnections } from '../../kube/connections.ts';
import { FIELD_MANAGER } from './names.ts';

export interface PoolApi {
  /** Server-side apply with the operator's field manager; resolves with the object as stored (when known). */
  apply(obj: KubernetesObject): Promise<KubernetesObject | void>;
  patchPoolStatus(pool: SessionPool, status: Record<string, unknown>): Promise<void>;
  /** Sets metadata.finalizers, guarded by the resourceVersion read (409 when stale). */
  setPoolFinalizers(pool: SessionPool, finalizers: string[]): Promise<void>;
  createMigration(migration: SessionMigration): Promise<void>;
  deleteMigration(namespace: string, name: string): Promise<void>;
  annotatePod(namespace: string, name: string, annotations: Record<string, string | null>): Promise<void>;
  readSecret(namespace: string, name: string): Promise<V1Secret>;
  /** Creates a Secret (the pool's admin token); 409 when it exists. Resolves with the Secret as stored. */
  createSecret(secret: V1Secret): Promise<V1Secret>;
}

export function createPoolApi(kubeConfig: KubeConfig): PoolApi {
  const kc = shareConnections(kubeConfig);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    async apply(obj) {
      const stored = await apply(objects, obj, { fieldManager: FIELD_MANAGER, force: true });
      // Only what the reconciler keeps (resourceVersion, generation): the rest is garbage at once.
      return { apiVersion: stored.apiVersion, kind: stored.kind, metadata: stored.metadata };
    },
    async patchPoolStatus(pool, status) {
      await patchStatus(
        custom,
        {
          group: GROUP,
          version: VERSION,
          plural: SESSION_POOL_PLURAL,
          namespace: pool.metadata.namespace ?? 'default',
          name: pool.metadata.name ?? '',
        },
        status,
        { fieldManager: FIELD_MANAGER },
      );
    },
    async setPoolFinalizers(pool, finalizers) {
      await custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: SESSION_POOL_PLURAL,
          namespace: pool.metadata.namespace ?? 'default',
          name: pool.metadata.name ?? '',
          body: { metadata: { finalizers, resourceVersion: pool.metadata.resourceVersion } },
          fieldManager: FIELD_MANAGER,
        },
        merge,
      );
    },
    async createMigration(migration) {
      await custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SESSION_MIGRATION_PLURAL,
        namespace: migration.metadata.namespace ?? 'default',
        body: migration,
        fieldManager: FIELD_MANAGER,
      });
    },
    async deleteMigration(namespace, name) {
      await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_MIGRATION_PLURAL, namespace, name });
    },
    async annotatePod(namespace, name, annotations) {
      await core.patchNamespacedPod({ name, namespace, body: { metadata: { annotations } }, fieldManager: FIELD_MANAGER }, merge);
    },
    async readSecret(namespace, name) {
      return core.readNamespacedSecret({ name, namespace });
    },
    async createSecret(secret) {
      return core.createNamespacedSecret({ namespace: secret.metadata?.namespace ?? 'default', body: secret, fieldManager: FIELD_MANAGER });
    },
  };
}
