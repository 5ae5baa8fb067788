// The pool's handler container (spec.handler), beside the worker in every pod: the user's code,
// reached by the worker over loopback (docs/handler-contract.md). Pure builders, tested in
// handler-container.test.ts; desired.ts puts the container in the pod and the env on the worker.
import type { V1Container, V1EnvVar } from '@kubernetes/client-node';
import type { HandlerSpec, SessionPool } from '../../api/index.ts';

export const HANDLER_CONTAINER = 'handler';
export const HANDLER_PORT_NAME = 'handler';
export const HANDLER_READY_PATH = '/contract/v1/ready';

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
    readinessProbe: handler.readinessProbe ?? {
      httpGet: { path: HANDLER_READY_PATH, port: HANDLER_PORT_NAME },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 2,
    },
  };
  if (handler.command) container.command = [...handler.command];
  if (handler.args) container.args = [...handler.args];
  if (handler.envFrom) container.envFrom = [...handler.envFrom];
  if (handler.imagePullPolicy) container.imagePullPolicy = handler.imagePullPolicy;
  if (handler.resources) container.resources = handler.resources as V1Container['resources'];
  return container;
}
