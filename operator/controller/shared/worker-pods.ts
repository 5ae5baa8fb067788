// Which pods the operator may write to: only a pool's own workers. A pod qualifies when it
// carries the pool label AND its controller is a ReplicaSet of the pool's Deployment (named
// `<deployment>-<pod-template-hash>`). A label alone is not enough: anyone who can create pods
// in the namespace can put a label on them, but only the Deployment controller makes the
// pool's ReplicaSets. Checked before the operator annotates (pod-deletion-cost) or evicts a pod,
// so a SessionMigration naming another workload's pods, or a worker name registered in the
// store, never makes the operator touch a pod that is not the pool's. Pure; tested beside.
import type { V1Pod } from '@kubernetes/client-node';
import { POOL_LABEL } from '../../api/index.ts';
import { deploymentName } from '../pool/names.ts';

/** The pod-template-hash suffix the Deployment controller appends to a ReplicaSet's name. */
const TEMPLATE_HASH = /^[a-z0-9]{1,20}$/;

export function isPoolWorkerPod(pod: V1Pod, pool: string): boolean {
  if (pod.metadata?.labels?.[POOL_LABEL] !== pool) return false;
  const owner = (pod.metadata.ownerReferences ?? []).find((ref) => ref.controller === true);
  if (!owner || owner.kind !== 'ReplicaSet' || owner.apiVersion !== 'apps/v1') return false;
  const prefix = `${deploymentName(pool)}-`;
  return owner.name.startsWith(prefix) && TEMPLATE_HASH.test(owner.name.slice(prefix.length));
}

/** The named pods that are workers of the pool, and the names that are not (gone, or someone else's). */
export function splitPoolWorkers(
  names: readonly string[],
  pods: readonly V1Pod[],
  pool: string,
): { workers: string[]; refused: string[]; gone: string[] } {
  const byName = new Map(pods.map((p) => [p.metadata?.name ?? '', p]));
  const workers: string[] = [];
  const refused: string[] = [];
  const gone: string[] = [];
  for (const name of names) {
    const pod = byName.get(name);
    if (!pod) gone.push(name);
    else if (isPoolWorkerPod(pod, pool)) workers.push(name);
    else refused.push(name);
  }
  return { workers, refused, gone };
}
