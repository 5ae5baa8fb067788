// Pure builders of a pool's children, in the shape server-side apply takes: only the fields
// the operator owns. No I/O here: everything is unit-tested in desired.test.ts.
import { createHash } from 'node:crypto';
import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { API_VERSION, SESSION_POOL_KIND, type SessionPool } from '../../api/index.ts';
import { HANDLER_CONTAINER, handlerContainer, handlerRuntimeEnv } from './handler-container.ts';
import { tlsEnv, tlsMounts, tlsVolumes } from './desired-tls.ts';
import {
  ADMIN_TOKEN_KEY,
  STORE_HASH_ANNOTATION,
  WORKER_CONTAINER,
  adminTokenSecretName,
  deploymentName,
  pdbName,
  poolLabels,
  selectorLabels,
  serviceName,
} from './names.ts';
import { DEFAULT_WORKER_RESOURCES, hardenPodSpec } from './pod-security.ts';

/** The worker's own drain deadline is capped (SPO_DRAIN_DEADLINE_SECONDS accepts 0..3600). */
export const MAX_WORKER_DRAIN_SECONDS = 3600;
/** Grace on top of the drain deadline before the kubelet kills a draining worker. */
export const TERMINATION_GRACE_MARGIN_SECONDS = 15;

export function ownerReference(pool: SessionPool): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: SESSION_POOL_KIND,
    name: pool.metadata.name ?? '',
    uid: pool.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of every child object of a pool: its namespace, the pool's labels, the pool as controller owner. */
export function childMetadata(pool: SessionPool, name: string) {
  return {
    name,
    namespace: pool.metadata.namespace ?? 'default',
    labels: poolLabels(pool.metadata.name ?? ''),
    ownerReferences: [ownerReference(pool)],
  };
}

/** The settings workers read from the environment that belong to the store: a change rolls the pods. */
export function storeSettingsHash(pool: SessionPool): string {
  const { store, sessions, sessionMode } = pool.spec;
  const material = JSON.stringify({
    endpoints: [...store.endpoints].sort(),
    credentials: store.credentialsSecretRef ?? null,
    tls: store.tls,
    keyPrefix: store.keyPrefix,
    durability: store.durability,
    allowDegradedMode: store.allowDegradedMode,
    sessions,
    sessionMode,
  });
  return createHash('sha256').update(material).digest('hex').slice(0, 16);
}

export function workerDrainSeconds(pool: SessionPool): number {
  return Math.min(pool.spec.maintenance.drainDeadlineSeconds, MAX_WORKER_DRAIN_SECONDS);
}

/** The worker's environment (the contract of operator/worker/config.ts). */
export function workerEnv(pool: SessionPool): V1EnvVar[] {
  const { spec } = pool;
  const env: V1EnvVar[] = [
    { name: 'SPO_POOL', value: pool.metadata.name ?? '' },
    // With SPO_POOL, the pool identity (namespace/name) every key of the pool is built from.
    { name: 'SPO_POOL_NAMESPACE', value: pool.metadata.namespace ?? 'default' },
    { name: 'SPO_WORKER_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'SPO_PORT', value: String(spec.worker.port) },
    { name: 'SPO_REDIS_NODES', value: spec.store.endpoints.join(',') },
  ];
  const creds = spec.store.credentialsSecretRef;
  if (creds) {
    if (creds.usernameKey)
      env.push({ name: 'SPO_REDIS_USERNAME', valueFrom: { secretKeyRef: { name: creds.name, key: creds.usernameKey } } });
    env.push({ name: 'SPO_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: creds.name, key: creds.passwordKey } } });
  }
  env.push(
    { name: 'SPO_KEY_PREFIX', value: spec.store.keyPrefix },
    { name: 'SPO_SESSION_TTL_SECONDS', value: String(spec.sessions.ttlSeconds) },
    { name: 'SPO_ANON_TTL_SECONDS', value: String(spec.sessions.anonymousTtlSeconds) },
    { name: 'SPO_MAX_SESSION_BYTES', value: String(spec.sessions.maxSessionBytes) },
    { name: 'SPO_IDLE_SECONDS', value: String(spec.sessions.idleSeconds) },
    { name: 'SPO_DURABILITY', value: spec.store.durability },
    { name: 'SPO_SESSION_MODE', value: spec.sessionMode },
    { name: 'SPO_ALLOW_DEGRADED', value: String(spec.store.allowDegradedMode) },
    { name: 'SPO_DRAIN_DEADLINE_SECONDS', value: String(workerDrainSeconds(pool)) },
    ...tlsEnv(pool),
  );
  // The pool's admin token (admin-token.ts): without it the worker refuses every /admin/* call.
  env.push({
    name: 'SPO_ADMIN_TOKEN',
    valueFrom: { secretKeyRef: { name: adminTokenSecretName(pool.metadata.name ?? ''), key: ADMIN_TOKEN_KEY } },
  });
  env.push(...handlerRuntimeEnv(pool));
  return env;
}

/** Merges env lists by name; later lists win. */
function mergeEnv(...lists: (V1EnvVar[] | undefined)[]): V1EnvVar[] {
  const byName = new Map<string, V1EnvVar>();
  for (const list of lists) for (const item of list ?? []) byName.set(item.name, item);
  return [...byName.values()];
}

function workerContainer(pool: SessionPool, fromTemplate: V1Container | undefined): V1Container {
  const { worker } = pool.spec;
  const mounts: V1VolumeMount[] = [...(fromTemplate?.volumeMounts ?? [])];
  mounts.push(...tlsMounts(pool, mounts));
  const ports = (fromTemplate?.ports ?? []).filter((p) => p.name !== 'http' && p.containerPort !== worker.port);
  const container: V1Container = {
    ...fromTemplate,
    name: WORKER_CONTAINER,
    image: worker.image,
    // No command: the image's entrypoint (tini -- node, Dockerfile) runs the worker, so node is not
    // PID 1 and a SIGTERM that comes while it starts still ends it. A template's command wins.
    ...(fromTemplate?.command ? {} : { args: ['operator/cmd/worker.ts', ...(fromTemplate?.args ?? [])] }),
    ports: [{ name: 'http', containerPort: worker.port, protocol: 'TCP' }, ...ports],
    env: mergeEnv(fromTemplate?.env, workerEnv(pool)),
    readinessProbe: fromTemplate?.readinessProbe ?? {
      httpGet: { path: '/readyz', port: 'http' },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 2,
    },
    livenessProbe: fromTemplate?.livenessProbe ?? {
      httpGet: { path: '/healthz', port: 'http' },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 6,
    },
  };
  if (worker.imagePullPolicy) container.imagePullPolicy = worker.imagePullPolicy;
  container.resources =
    (worker.resources as V1Container['resources']) ?? fromTemplate?.resources ?? structuredClone(DEFAULT_WORKER_RESOURCES);
  if (mounts.length > 0) container.volumeMounts = mounts;
  return container;
}

export function podSpec(pool: SessionPool): V1PodSpec {
  const template = pool.spec.template?.spec ?? ({} as Partial<V1PodSpec>);
  const containers = template.containers ?? [];
  const fromTemplate = containers.find((c) => c.name === WORKER_CONTAINER);
  // spec.handler owns the container named handler: a template's container of that name is replaced.
  const handler = handlerContainer(pool);
  const others = containers.filter((c) => c.name !== WORKER_CONTAINER && !(handler && c.name === HANDLER_CONTAINER));
  const volumes: V1Volume[] = [...(template.volumes ?? [])];
  volumes.push(...tlsVolumes(pool, volumes));
  const minGrace = workerDrainSeconds(pool) + TERMINATION_GRACE_MARGIN_SECONDS;
  const spec: V1PodSpec = {
    ...template,
    containers: [workerContainer(pool, fromTemplate), ...(handler ? [handler] : []), ...others],
    terminationGracePeriodSeconds: Math.max(template.terminationGracePeriodSeconds ?? 0, minGrace),
  };
  if (volumes.length > 0) spec.volumes = volumes;
  return hardenPodSpec(spec);
}

export function desiredDeployment(pool: SessionPool, replicas: number): V1Deployment {
  const name = pool.metadata.name ?? '';
  const templateMeta = pool.spec.template?.metadata ?? {};
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMetadata(pool, deploymentName(name)),
    spec: {
      replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels(name) },
      // Add a worker before removing one: a rollout never lowers capacity.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: { ...templateMeta.labels, ...poolLabels(name) },
          annotations: { ...templateMeta.annotations, [STORE_HASH_ANNOTATION]: storeSettingsHash(pool) },
        },
        spec: podSpec(pool),
      },
    },
  };
}

export function desiredService(pool: SessionPool): V1Service {
  const name = pool.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMetadata(pool, serviceName(name)),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(name),
      ports: [{ name: 'http', port: pool.spec.worker.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** maxUnavailable 1 and AlwaysAllow: a drain always makes progress, never blocks forever. */
export function desiredPdb(pool: SessionPool): V1PodDisruptionBudget {
  const name = pool.metadata.name ?? '';
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMetadata(pool, pdbName(name)),
    spec: {
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: { matchLabels: selectorLabels(name) },
    },
  };
}
