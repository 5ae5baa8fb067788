// The pool's children (Deployment, Service, PodDisruptionBudget), applied by the reconciler
// only when out of date: the hash of each desired object is stamped on it
// (APPLIED_HASH_ANNOTATION) and compared with the cached copy's, and with what this process
// applied last while the cache catches up. Unchanged children are re-applied on a long
// interval anyway, as a safety net.
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import type { SessionPool } from '../../api/index.ts';
import { parseKey } from '../../kube/informer.ts';
import { withAdminTokenSecret } from './admin-token.ts';
import { desiredDeployment, desiredPdb, desiredService } from './desired.ts';
import { desiredNetworkPolicy } from './network-policy.ts';
import { APPLIED_HASH_ANNOTATION, deploymentName, networkPolicyName, pdbName, serviceName } from './names.ts';
import type { PoolReconcilerDeps } from './reconciler.ts';

export type ChildDeps = Pick<
  PoolReconcilerDeps,
  'api' | 'deployments' | 'services' | 'pdbs' | 'reapplyIntervalMs' | 'networkPolicies' | 'workerNetworkPolicy'
>;

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

function withAppliedHash<T extends KubernetesObject>(obj: T): { obj: T; hash: string } {
  const hash = hashOf(obj);
  return {
    obj: { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata?.annotations, [APPLIED_HASH_ANNOTATION]: hash } } },
    hash,
  };
}

/** What this process last applied for a child, to tell our own writes from others' while the cache lags. */
interface AppliedMemo {
  hash: string;
  /** resourceVersion the cache showed when we applied (undefined: not cached). */
  rvBefore: string | undefined;
  /** resourceVersion and generation the apply returned. */
  rv: string | undefined;
  generation: number | undefined;
  at: number;
}

/** How long an apply of ours may stay invisible in the cache before we trust the cache again. */
const CACHE_LAG_MS = 30_000;

export class ChildApplier {
  private readonly deps: ChildDeps;
  private readonly now: () => number;
  private readonly lastApplied = new Map<string, number>();
  /** Per child ("kind/namespace/name"): what we applied last. */
  private readonly applied = new Map<string, AppliedMemo>();

  constructor(deps: ChildDeps, now: () => number) {
    this.deps = deps;
    this.now = now;
  }

  forget(key: string): void {
    this.lastApplied.delete(key);
    const { namespace: ns, name: poolName } = parseKey(key);
    for (const child of [deploymentName(poolName), serviceName(poolName), pdbName(poolName), networkPolicyName(poolName)])
      for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy'])
        this.applied.delete(`${kind}/${ns ?? ''}/${child}`);
  }

  /**
   * Applies the children that are not up to date; true when one was skipped only because the cache lags.
   * `adminTokenSecretUid` is stamped on the pod template: a recreated token Secret rolls the workers.
   */
  async apply(key: string, pool: SessionPool, replicas: number, now: number, adminTokenSecretUid: string): Promise<boolean> {
    const namespace = pool.metadata.namespace ?? 'default';
    const name = pool.metadata.name ?? '';
    const reapplyMs = this.deps.reapplyIntervalMs ?? 6 * 3_600_000;
    const last = this.lastApplied.get(key);
    // First sight: a random point of the interval, so pools seen together are not re-applied together.
    if (last === undefined) this.lastApplied.set(key, now - Math.floor(Math.random() * reapplyMs));
    const stale = reapplyMs > 0 && last !== undefined && now - last > reapplyMs;
    const children: Array<{ obj: KubernetesObject; cached: KubernetesObject | undefined; extraCheck?: (c: KubernetesObject) => boolean }> =
      [
        {
          obj: withAdminTokenSecret(desiredDeployment(pool, replicas), adminTokenSecretUid),
          cached: this.deps.deployments.get(deploymentName(name), namespace),
          extraCheck: (c) => (c as V1Deployment).spec?.replicas === replicas,
        },
        { obj: desiredService(pool), cached: this.deps.services.get(serviceName(name), namespace) },
        { obj: desiredPdb(pool), cached: this.deps.pdbs.get(pdbName(name), namespace) },
      ];
    const { workerNetworkPolicy, networkPolicies } = this.deps;
    if (workerNetworkPolicy && networkPolicies)
      children.push({
        obj: desiredNetworkPolicy(pool, workerNetworkPolicy),
        cached: networkPolicies.get(networkPolicyName(name), namespace),
      });
    let lagging = false;
    await Promise.all(
      children.map(async ({ obj, cached, extraCheck }) => {
        const { obj: withHash, hash } = withAppliedHash(obj);
        const childKey = `${obj.kind}/${namespace}/${obj.metadata?.name ?? ''}`;
        const memo = this.applied.get(childKey);
        const cachedRv = cached?.metadata?.resourceVersion;
        const cachedCurrent =
          cached !== undefined &&
          cached.metadata?.annotations?.[APPLIED_HASH_ANNOTATION] === hash &&
          (cached.metadata.ownerReferences ?? []).some((r) => r.uid === pool.metadata.uid) &&
          (extraCheck?.(cached) ?? true);
        // Someone else changed the spec after our apply (the generation moved, our hash stayed).
        const drifted =
          memo?.hash === hash &&
          memo.generation !== undefined &&
          cached?.metadata?.generation !== undefined &&
          cachedRv !== memo.rv &&
          cached.metadata.generation > memo.generation;
        // Our apply is not in the cache yet (the watch lags): do not send it again.
        const inFlight = memo?.hash === hash && cachedRv === memo.rvBefore && this.now() - memo.at < CACHE_LAG_MS;
        if (!stale && !drifted && (cachedCurrent || inFlight)) {
          if (!cachedCurrent) lagging = true;
          return;
        }
        const result = await this.deps.api.apply(withHash);
        const stored = result ?? undefined;
        this.applied.set(childKey, {
          hash,
          rvBefore: cachedRv,
          rv: stored?.metadata?.resourceVersion,
          generation: stored?.metadata?.generation,
          at: this.now(),
        });
      }),
    );
    if (stale) this.lastApplied.set(key, now);
    return lagging;
  }
}
