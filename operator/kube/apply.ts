// Writes that never clobber other managers' fields:
// - apply(): server-side apply with one stable field manager and force (we own what we send;
//   a field someone else set and we also set becomes ours). Works for built-in kinds and custom
//   resources through KubernetesObjectApi (which otherwise defaults to strategic merge, which
//   custom resources reject).
// - mergePatch(): a JSON merge patch for small edits (e.g. one annotation).
// - patchStatus(): JSON merge patch on a custom resource's /status subresource. A merge patch
//   replaces lists whole: send the full conditions array, not only the changed entry.
// - ownerReference(): the reference a child carries so garbage collection removes it.
import {
  PatchStrategy,
  setHeaderOptions,
  type CustomObjectsApi,
  type KubernetesObject,
  type KubernetesObjectApi,
  type V1OwnerReference,
} from '@kubernetes/client-node';

export const FIELD_MANAGER = 'session-pool-operator';

export interface ApplyOptions {
  fieldManager?: string;
  /** Default true: take over conflicting fields from other managers. */
  force?: boolean;
  /** "All" for a server-side dry run. */
  dryRun?: 'All';
}

/** The object as an apply configuration: identity and intent only, no server-owned metadata. */
export function applyConfiguration<T extends KubernetesObject>(obj: T): T {
  if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
    throw new Error(`server-side apply needs apiVersion, kind and metadata.name (got ${obj.apiVersion}/${obj.kind} ${obj.metadata?.name})`);
  }
  const { managedFields: _m, resourceVersion: _r, uid: _u, creationTimestamp: _c, generation: _g, ...metadata } = obj.metadata;
  const { status: _s, ...rest } = obj as T & { status?: unknown };
  return { ...(rest as T), metadata };
}

/** Creates or updates obj by server-side apply; returns the object as stored. */
export async function apply<T extends KubernetesObject>(client: KubernetesObjectApi, obj: T, options: ApplyOptions = {}): Promise<T> {
  return client.patch(
    applyConfiguration(obj),
    undefined,
    options.dryRun,
    options.fieldManager ?? FIELD_MANAGER,
    options.force ?? true,
    PatchStrategy.ServerSideApply,
  );
}

/**
 * A JSON merge patch of the object named by patch (apiVersion, kind, metadata.name/namespace
 * must be set): only the fields given change; null deletes a field.
 */
export async function mergePatch<T extends KubernetesObject>(
  client: KubernetesObjectApi,
  patch: T,
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  return client.patch(patch, undefined, undefined, fieldManager, undefined, PatchStrategy.MergePatch);
}

export interface CustomResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace: string;
  name: string;
}

export interface PatchStatusOptions {
  /** When set, the patch fails with 409 if the object changed since this version was read. */
  resourceVersion?: string;
  fieldManager?: string;
}

/**
 * Merge-patches status on the /status subresource. Lists (conditions) are replaced whole by a
 * merge patch: pass the complete list.
 */
export async function patchStatus<S extends object>(
  api: CustomObjectsApi,
  ref: CustomResourceRef,
  status: S,
  options: PatchStatusOptions = {},
): Promise<unknown> {
  const body: Record<string, unknown> = { status };
  if (options.resourceVersion) body.metadata = { resourceVersion: options.resourceVersion };
  return api.patchNamespacedCustomObjectStatus(
    { ...ref, body, fieldManager: options.fieldManager ?? FIELD_MANAGER },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** The owner reference a child of owner carries: controller, and blocking foreground deletion. */
export function ownerReference(owner: KubernetesObject): V1OwnerReference {
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!owner.apiVersion || !owner.kind || !name || !uid) {
    throw new Error(
      `an owner reference needs apiVersion, kind, metadata.name and metadata.uid (got ${owner.apiVersion}/${owner.kind} ${name} uid=${uid})`,
    );
  }
  return { apiVersion: owner.apiVersion, kind: owner.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/** Whether child is controlled by owner (by uid). */
export function isControlledBy(child: KubernetesObject, owner: KubernetesObject): boolean {
  const uid = owner.metadata?.uid;
  return uid !== undefined && (child.metadata?.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === uid);
}
