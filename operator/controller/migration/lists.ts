// List calls of custom resources for informers (the generated client returns untyped objects).
import type { CustomObjectsApi, KubernetesListObject } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../api/index.ts';

/** Lists a custom resource across namespaces for an informer. */
export function customLister<T>(api: CustomObjectsApi, plural: string) {
  return async (options: { labelSelector?: string; fieldSelector?: string }): Promise<KubernetesListObject<T & { metadata?: object }>> =>
    (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...options })) as KubernetesListObject<
      T & { metadata?: object }
    >;
}
