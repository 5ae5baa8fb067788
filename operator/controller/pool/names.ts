// Names, labels and annotations of a pool's children: a contract with the test harness
// (e2e/harness/local-kubelet.ts selects worker pods by the component label), the chart's
// alerts and users' selectors. Change nothing here lightly.
import { POOL_LABEL, type SessionPool } from '../../api/index.ts';
import { poolIdentity } from '../../store/keys.ts';

export const FIELD_MANAGER = 'session-pool-operator';
export const CONTROLLER_NAME = 'sessionpool';

export const WORKER_CONTAINER = 'worker';
export const WORKER_APP_NAME = 'session-worker';
export const WORKER_COMPONENT = 'session-worker';
export const MANAGED_BY = 'session-pool-operator';

/** Hash of the store settings on the pod template: a change rolls the workers. */
export const STORE_HASH_ANNOTATION = 'dspex.io/store-config-hash';
/** Annotation (on a SessionMigration, or on a Node for the drain's migrations) that forces an evacuation. */
export const FORCE_DRAIN_ANNOTATION = 'dspex.io/force-drain';
/** Set on pods chosen for a scale-down: the ReplicaSet deletes the lowest cost first. */
export const POD_DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';
/** Lowest int32: these pods go first. */
export const VICTIM_DELETION_COST = '-2147483648';
/** On SessionMigrations the pool creates for a scale-down. */
/** Annotation on children: hash of what was last applied, so an unchanged child is not re-sent. */
export const APPLIED_HASH_ANNOTATION = 'dspex.io/applied-hash';
/** Key of the admin token in the pool's admin token Secret. */
export const ADMIN_TOKEN_KEY = 'token';
/** On the pod template: uid of the admin token Secret the workers read (a new Secret rolls them). */
export const ADMIN_TOKEN_SECRET_ANNOTATION = 'dspex.io/admin-token-secret-uid';
export const PURPOSE_LABEL = 'dspex.io/purpose';
export const SCALE_DOWN_PURPOSE = 'scale-down';
/** Replica count the scale-down migration was created to reach. */
export const SCALE_DOWN_TARGET_ANNOTATION = 'dspex.io/scale-down-target';

/** The pool's identity in the session store (`<namespace>/<name>`): every key, worker registration,
 *  session header and migration journal of the pool is built from it, never from the name alone. */
export function storePoolId(pool: Pick<SessionPool, 'metadata'>): string {
  return poolIdentity(pool.metadata.namespace ?? 'default', pool.metadata.name ?? '');
}

export function deploymentName(pool: string): string {
  return `${pool}-workers`;
}

/** The Secret holding the pool's worker admin token (created once by the operator, owned by the pool). */
export function adminTokenSecretName(pool: string): string {
  return `${pool}-admin-token`;
}

/** The pool's worker NetworkPolicy. */
export function networkPolicyName(pool: string): string {
  return `${pool}-workers`;
}

export function serviceName(pool: string): string {
  return pool;
}

export function pdbName(pool: string): string {
  return `${pool}-workers`;
}

/** The labels that select a pool's worker pods (the Deployment selector; immutable). */
export function selectorLabels(pool: string): Record<string, string> {
  return { 'app.kubernetes.io/component': WORKER_COMPONENT, [POOL_LABEL]: pool };
}

/** Every label the operator puts on a pool's children and pods. */
export function poolLabels(pool: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': WORKER_APP_NAME,
    'app.kubernetes.io/component': WORKER_COMPONENT,
    'app.kubernetes.io/instance': pool,
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [POOL_LABEL]: pool,
  };
}

/** The selector in string form (status.selector, read by the scale subresource). */
export function selectorString(pool: string): string {
  return Object.entries(selectorLabels(pool))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
