// The pool's handler container (spec.handler), beside the worker in every pod: the user's code,
// reached by the worker over loopback (docs/handler-contract.md). Pure builders, tested in
// handler-container.test.ts; desired.ts puts the container in the pod and the env on the worker.
import type { V1Container, V1EnvVar } from '@kubernetes/client-node';
import type { HandlerSpec, SessionPool } from '../../api/index.ts';
import { HANDLER_STOP_PATH } from '../../worker/handler-release.ts';

export const HANDLER_CONTAINER = 'handler';
export const HANDLER_PORT_NAME = 'handler';

/** What the worker container is told about its handler: none when the pool has no handler. */
export function handlerRuntimeEnv(pool: SessionPool): V1EnvVar[] {
  const handler = pool.spec.handler;
  if (!handler) return [];
  return [
    { name: 'SPO_HANDLER_PORT', value: String(handler.port) },
    { name: 'SPO_HANDLER_TIMEOUT_MS', value: String(handler.timeoutSeconds * 1000) },
  ];
}

/** The handler's environment: the user's variables, then the contract's (which win). */
function handlerEnv(pool: SessionPool, handler: HandlerSpec): V1EnvVar[] {
  const contract: V1EnvVar[] = [
    { name: 'SPO_HANDLER_PORT', value: String(handler.port) },
    { name: 'SPO_POOL', value: pool.metadata.name ?? '' },
    { name: 'SPO_WORKER_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  ];
  const reserved = new Set(contract.map((v) => v.name));
  return [...(handler.env ?? []).filter((v) => !reserved.has(v.name)), ...contract] as V1EnvVar[];
}

/** The handler container, or undefined when the pool runs the built-in handlers. */
export function handlerContainer(pool: SessionPool): V1Container | undefined {
  const handler = pool.spec.handler;
  if (!handler) return undefined;
  const container: V1Container = {
    name: HANDLER_CONTAINER,
    image: handler.image,
    ports: [{ name: HANDLER_PORT_NAME, containerPort: handler.port, protocol: 'TCP' }],
    env: handlerEnv(pool, handler),
    // The kubelet sends SIGTERM to every container at once; a handler that exits on it would close
    // connections the draining worker still sends on. The hook holds the handler's SIGTERM until the
    // worker answers that it sends nothing more. A named port would name one of this container's own.
    lifecycle: { preStop: { httpGet: { path: HANDLER_STOP_PATH, port: pool.spec.worker.port } } },
  };
  // No default readiness probe: the handler listens on 127.0.0.1 only (the contract), and the
  // kubelet probes the pod's IP, so an httpGet probe would never succeed on a real node (the
  // kind tier found it). The worker polls GET /contract/v1/ready over loopback and its own
  // /readyz fails until the handler is ready, so the pod's readiness already includes it.
  if (handler.readinessProbe) container.readinessProbe = handler.readinessProbe;
  if (handler.command) container.command = [...handler.command];
  if (handler.args) container.args = [...handler.args];
  if (handler.envFrom) container.envFrom = [...handler.envFrom];
  if (handler.imagePullPolicy) container.imagePullPolicy = handler.imagePullPolicy;
  if (handler.resources) container.resources = handler.resources as V1Container['resources'];
  return container;
}
