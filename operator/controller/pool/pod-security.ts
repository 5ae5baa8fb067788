// Hardened defaults of the worker pods, as CloudNativePG and cert-manager ship theirs: non-root,
// read-only root filesystem, every capability dropped, no privilege escalation, the runtime's
// seccomp profile, no ServiceAccount token. They satisfy the Pod Security Standard
// "restricted", so a pool runs in a namespace that enforces it. Every default sits under what
// the pool's template says: a field the template sets wins, field by field. Applied to the
// whole pod spec once it is built, so every container (the worker, a handler, a user's sidecar,
// init containers) gets them. Pure; tested in pod-security.test.ts.
import type { V1Container, V1PodSecurityContext, V1PodSpec, V1ResourceRequirements, V1SecurityContext } from '@kubernetes/client-node';

/** The image's user (Dockerfile `USER 10001:10001`); numeric, so the kubelet can check runAsNonRoot. */
export const WORKER_UID = 10001;
/** Writable scratch space: the root filesystem is read-only. */
export const TMP_VOLUME = 'spo-tmp';
export const TMP_MOUNT_PATH = '/tmp';
const TMP_SIZE_LIMIT = '64Mi';

export const DEFAULT_POD_SECURITY_CONTEXT: Readonly<V1PodSecurityContext> = Object.freeze({
  runAsNonRoot: true,
  runAsUser: WORKER_UID,
  runAsGroup: WORKER_UID,
  seccompProfile: { type: 'RuntimeDefault' },
});

export const DEFAULT_CONTAINER_SECURITY_CONTEXT: Readonly<V1SecurityContext> = Object.freeze({
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
});

/**
 * Requests and limits of the worker container when neither spec.worker.resources nor the
 * template's worker container sets any. A worker is one Node.js process: its event loop uses one
 * core at most. Measured (docs/chart.md, "Security"): 125 MiB resident at rest with its Redis
 * Cluster client, 177 MiB after creating 2000 sessions of 2 KB; 512 MiB leaves room for
 * in-flight sessions up to the default 1 MiB each. Nothing but /tmp is written.
 */
export const DEFAULT_WORKER_RESOURCES: Readonly<V1ResourceRequirements> = Object.freeze({
  requests: { cpu: '100m', memory: '192Mi' },
  limits: { cpu: '1', memory: '512Mi' },
});

/** The defaults under what the container sets; the container's fields win one by one. */
export function hardenContainer(container: V1Container): V1Container {
  const securityContext: V1SecurityContext = { ...structuredClone(DEFAULT_CONTAINER_SECURITY_CONTEXT), ...container.securityContext };
  const hardened: V1Container = { ...container, securityContext };
  const mounts = container.volumeMounts ?? [];
  if (securityContext.readOnlyRootFilesystem === true && !mounts.some((m) => m.mountPath === TMP_MOUNT_PATH))
    hardened.volumeMounts = [...mounts, { name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH }];
  return hardened;
}

/**
 * The hardened pod: pod security context and token mount defaulted under the template's, every
 * container and init container hardened, and the /tmp volume when a container mounts it.
 */
export function hardenPodSpec(spec: V1PodSpec): V1PodSpec {
  const containers = spec.containers.map(hardenContainer);
  const initContainers = spec.initContainers?.map(hardenContainer);
  const hardened: V1PodSpec = {
    ...spec,
    automountServiceAccountToken: spec.automountServiceAccountToken ?? false,
    securityContext: { ...structuredClone(DEFAULT_POD_SECURITY_CONTEXT), ...spec.securityContext },
    containers,
  };
  if (initContainers) hardened.initContainers = initContainers;
  const volumes = spec.volumes ?? [];
  const mountsTmp = [...containers, ...(initContainers ?? [])].some((c) => c.volumeMounts?.some((m) => m.name === TMP_VOLUME));
  if (mountsTmp && !volumes.some((v) => v.name === TMP_VOLUME))
    hardened.volumes = [...volumes, { name: TMP_VOLUME, emptyDir: { sizeLimit: TMP_SIZE_LIMIT } }];
  return hardened;
}
