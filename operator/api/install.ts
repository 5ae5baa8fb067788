// Installs (or upgrades) the CRDs in a cluster by server-side apply and waits until the
// apiserver serves them. Used by integration and end-to-end tests and the sandbox; in a real
// cluster the Helm chart or `kubectl apply --server-side -f crds/` does this.
import {
  ApiextensionsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { buildCrd } from './crd.ts';
import { CRD_DEFINITIONS } from './generate-crds.ts';

export const CRD_FIELD_MANAGER = 'session-pool-operator-crds';

export interface InstallCrdsOptions {
  /** How long to wait for every CRD to be Established; default 30 s. */
  timeoutMs?: number;
}

/** The CRD objects, as generated (the same content as crds/*.yaml). */
export function crdObjects(): V1CustomResourceDefinition[] {
  return CRD_DEFINITIONS.map((definition) => buildCrd(definition) as unknown as V1CustomResourceDefinition);
}

function established(crd: V1CustomResourceDefinition): boolean {
  return (crd.status?.conditions ?? []).some((condition) => condition.type === 'Established' && condition.status === 'True');
}

/** Server-side applies both CRDs, then waits until both are Established. Returns their names. */
export async function installCrds(kc: KubeConfig, options: InstallCrdsOptions = {}): Promise<string[]> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const names: string[] = [];
  for (const crd of crdObjects()) {
    const name = crd.metadata?.name ?? '';
    await api.patchCustomResourceDefinition(
      { name, body: crd, fieldManager: CRD_FIELD_MANAGER, force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
    names.push(name);
  }
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (const name of names) {
    for (;;) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (established(crd)) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established in time: ${JSON.stringify(crd.status?.conditions ?? [])}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return names;
}
