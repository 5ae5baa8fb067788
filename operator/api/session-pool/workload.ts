// The workload of a SessionPool: the pod template, the worker container and the optional
// handler container. Part of the SessionPool schema (../session-pool.ts).
import Type, { type Static } from 'typebox';
import type { V1EnvFromSource, V1EnvVarSource, V1PodSpec, V1Probe } from '@kubernetes/client-node';
import { ResourceRequirementsSchema, StringEnum } from '../meta.ts';

export const PodTemplateSchema = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object(
        {
          labels: Type.Optional(
            Type.Record(Type.String(), Type.String({ description: 'Label value.', maxLength: 63 }), {
              description: `Labels added to every worker pod. The operator adds its own selector label (dspex.io/pool), which cannot be overridden.`,
              maxProperties: 64,
            }),
          ),
          annotations: Type.Optional(
            Type.Record(Type.String(), Type.String({ description: 'Annotation value.' }), {
              description: 'Annotations added to every worker pod.',
              maxProperties: 64,
            }),
          ),
        },
        { description: 'Labels and annotations of the worker pods.' },
      ),
    ),
    spec: Type.Optional(
      Type.Unsafe<V1PodSpec>({
        type: 'object',
        'x-kubernetes-preserve-unknown-fields': true,
        description:
          'A Kubernetes PodSpec merged into the worker pods: nodeSelector, tolerations, affinity, securityContext, volumes, extra containers. A container named "worker" is merged with spec.worker (image, port and resources from spec.worker win). Not validated here: the apiserver validates it when the Deployment is written.',
      }),
    ),
  },
  {
    description: 'Pod template of the workers (a PodTemplateSpec). Optional: spec.worker alone gives a working pod.',
  },
);
export type PodTemplate = Static<typeof PodTemplateSchema>;

export const WorkerSchema = Type.Object(
  {
    image: Type.String({
      description: 'Container image of the worker, e.g. ghcr.io/dspex/session-pool-operator:0.1.0.',
      minLength: 1,
      maxLength: 1024,
    }),
    imagePullPolicy: Type.Optional(
      StringEnum(['Always', 'IfNotPresent', 'Never'], {
        description: 'Image pull policy of the worker container; the Kubernetes default when unset.',
      }),
    ),
    port: Type.Integer({
      description: 'Port of the worker HTTP API (sessions, /healthz, /readyz, /metrics).',
      minimum: 1,
      maximum: 65535,
      default: 8080,
      format: 'int32',
    }),
    resources: Type.Optional(ResourceRequirementsSchema),
  },
  { description: 'The worker container: image, port and resources.' },
);
export type WorkerSpec = Static<typeof WorkerSchema>;

/** A Kubernetes object kept as given (validated by the apiserver when the Deployment is written). */
function KubeObject<T>(description: string) {
  return Type.Unsafe<T>({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description });
}

export const HandlerSchema = Type.Object(
  {
    image: Type.String({
      description: "Container image of the user's handler (any language; it serves the handler contract, docs/handler-contract.md).",
      minLength: 1,
      maxLength: 1024,
    }),
    imagePullPolicy: Type.Optional(
      StringEnum(['Always', 'IfNotPresent', 'Never'], {
        description: 'Image pull policy of the handler container; the Kubernetes default when unset.',
      }),
    ),
    command: Type.Optional(
      Type.Array(Type.String({ description: 'An argument.', maxLength: 4096 }), {
        description: "Entrypoint of the handler container; the image's own when unset.",
        maxItems: 64,
      }),
    ),
    args: Type.Optional(
      Type.Array(Type.String({ description: 'An argument.', maxLength: 4096 }), {
        description: 'Arguments of the entrypoint.',
        maxItems: 256,
      }),
    ),
    env: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ description: 'Name of the variable.', minLength: 1, maxLength: 256 }),
            value: Type.Optional(Type.String({ description: 'Value of the variable.' })),
            valueFrom: Type.Optional(
              KubeObject<V1EnvVarSource>('Where the value comes from (secretKeyRef, configMapKeyRef, fieldRef), as in a container spec.'),
            ),
          },
          { description: 'A variable, as in a container spec.' },
        ),
        {
          description:
            "Environment of the handler (e.g. the language model's provider and a key from a Secret). SPO_HANDLER_PORT, SPO_POOL and SPO_WORKER_NAME are set by the operator and win.",
          maxItems: 256,
        },
      ),
    ),
    envFrom: Type.Optional(
      Type.Array(KubeObject<V1EnvFromSource>('A Secret or ConfigMap whose keys become variables, as in a container spec.'), {
        description: 'Secrets and ConfigMaps whose keys become variables of the handler.',
        maxItems: 32,
      }),
    ),
    resources: Type.Optional(ResourceRequirementsSchema),
    port: Type.Integer({
      description: 'Port the handler listens on, on 127.0.0.1 (SPO_HANDLER_PORT); must differ from spec.worker.port.',
      minimum: 1,
      maximum: 65535,
      default: 8081,
      format: 'int32',
    }),
    timeoutSeconds: Type.Integer({
      description:
        'Deadline of one handler call: past it the client gets 504 HANDLER_TIMEOUT and nothing is written. A language-model call takes seconds.',
      minimum: 1,
      maximum: 3600,
      default: 60,
      format: 'int32',
    }),
    readinessProbe: Type.Optional(
      KubeObject<V1Probe>(
        "Readiness probe of the handler container; none by default: the handler listens on loopback, out of the kubelet's reach, and the worker's own readiness already waits for the handler's GET /contract/v1/ready.",
      ),
    ),
  },
  {
    description:
      "The user's handler, run as a second container (named handler) in every worker pod; the worker calls it over loopback (docs/handler-contract.md). Without it, the worker runs its built-in handlers.",
  },
);
export type HandlerSpec = Static<typeof HandlerSchema>;
