// SessionPool: a pool of stateless workers whose sessions live in a Redis Cluster. The spec
// and status schemas below are the one source of truth: crds/sessionpools.yaml, the types
// and docs/api-reference.md are generated from them. A field with a `default` is required in
// the TypeScript type (the apiserver fills it in before anyone reads the object) and optional
// in the CRD.
import Type, { type Static } from 'typebox';
import type { V1EnvFromSource, V1EnvVarSource, V1ObjectMeta, V1PodSpec, V1Probe } from '@kubernetes/client-node';
import type { API_VERSION } from './meta.ts';
import {
  CATEGORIES,
  Conditions,
  ObjectName,
  PORT_SUFFIX_PATTERN,
  ResourceRequirementsSchema,
  SecretKey,
  StringEnum,
  type CrdDefinition,
} from './meta.ts';

export const SESSION_POOL_KIND = 'SessionPool';
export const SESSION_POOL_LIST_KIND = 'SessionPoolList';
export const SESSION_POOL_PLURAL = 'sessionpools';
export const SESSION_POOL_SINGULAR = 'sessionpool';
export const SESSION_POOL_SHORT_NAMES = ['spool', 'sp'];

export const SESSION_MODES = ['Centralized', 'Dual', 'WorkerLocal'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];
export const DURABILITY_LEVELS = ['leader', 'replica'] as const;
export const DELETION_POLICIES = ['Delete', 'Retain'] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];
export const SESSION_POOL_PHASES = ['Pending', 'Running', 'Scaling', 'Evacuating', 'Degraded', 'Terminating'] as const;
export type SessionPoolPhase = (typeof SESSION_POOL_PHASES)[number];
/** Condition types the pool reconciler sets. */
export const SESSION_POOL_CONDITIONS = ['Ready', 'Progressing', 'Degraded', 'StoreReachable'] as const;
export type SessionPoolConditionType = (typeof SESSION_POOL_CONDITIONS)[number];

/** `host:port`, the host a DNS name, an IPv4 address or a bracketed IPv6 address. */
const ENDPOINT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$';

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

export const AutoscalingSchema = Type.Object(
  {
    enabled: Type.Boolean({
      description: 'Scale the pool on its active session count. When true, spec.replicas is only the starting size.',
      default: false,
    }),
    minReplicas: Type.Integer({
      description: 'Fewest workers the autoscaler keeps.',
      minimum: 1,
      maximum: 1000,
      default: 1,
      format: 'int32',
    }),
    maxReplicas: Type.Integer({
      description: 'Most workers the autoscaler runs.',
      minimum: 1,
      maximum: 1000,
      default: 10,
      format: 'int32',
    }),
    targetSessionsPerWorker: Type.Integer({
      description:
        'Active sessions one worker should hold: desired workers = ceil(active sessions / this), within minReplicas and maxReplicas.',
      minimum: 1,
      maximum: 1000000,
      default: 100,
      format: 'int32',
    }),
    scaleDownStabilizationSeconds: Type.Integer({
      description:
        'Scale down only to the highest recommendation of this many past seconds, so a dip does not shed (and evacuate) workers. Scaling up is immediate.',
      minimum: 0,
      maximum: 3600,
      default: 300,
      format: 'int32',
    }),
  },
  {
    description: 'Autoscaling on sessions. Scale-down evacuates the emptiest workers before removing them.',
    default: {},
    'x-kubernetes-validations': [
      {
        rule: 'self.minReplicas <= self.maxReplicas',
        message: 'autoscaling.minReplicas must not be greater than autoscaling.maxReplicas',
        fieldPath: '.minReplicas',
      },
    ],
  },
);
export type AutoscalingSpec = Static<typeof AutoscalingSchema>;

export const SecretKeyRefSchema = Type.Object(
  {
    name: ObjectName('Name of the Secret, in the pool namespace.'),
    key: SecretKey('Key in the Secret that holds the PEM-encoded CA certificate.', { default: 'ca.crt' }),
  },
  { description: 'A key of a Secret in the pool namespace.' },
);

export const StoreSchema = Type.Object(
  {
    endpoints: Type.Array(
      Type.String({
        description: 'A node of the Redis Cluster as host:port, the port 1 to 65535.',
        maxLength: 261,
        pattern: ENDPOINT_PATTERN,
        'x-kubernetes-validations': [
          { rule: `self.matches('${PORT_SUFFIX_PATTERN}')`, message: 'the port of a store endpoint must be 1 to 65535' },
        ],
      }),
      {
        description: 'Seed nodes of the Redis Cluster, as host:port. One is enough; the client discovers the others.',
        minItems: 1,
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
      },
    ),
    credentialsSecretRef: Type.Optional(
      Type.Object(
        {
          name: ObjectName('Name of the Secret, in the pool namespace.'),
          usernameKey: Type.Optional(
            SecretKey(
              'Key in the Secret that holds the Redis ACL user name. Unset: authenticate with the password only (the default user).',
            ),
          ),
          passwordKey: SecretKey('Key in the Secret that holds the password.', { default: 'password' }),
        },
        { description: 'Secret with the Redis credentials. Credentials are only ever read from a Secret. Unset: no authentication.' },
      ),
    ),
    tls: Type.Object(
      {
        enabled: Type.Boolean({ description: 'Connect to Redis over TLS.', default: false }),
        caSecretRef: Type.Optional(SecretKeyRefSchema),
        serverName: Type.Optional(
          Type.String({
            description:
              "DNS name every node's certificate is checked against (and sent as SNI). A Redis Cluster announces its nodes by IP, so without it each node's certificate must hold the IP it is reached at. Unset: the address each node is reached at.",
            minLength: 1,
            maxLength: 253,
            pattern: '^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$',
            'x-kubernetes-validations': [
              { rule: "!self.matches('^[0-9.]+$')", message: 'tls.serverName is a DNS name, not an IP address' },
            ],
          }),
        ),
        clientCertSecretRef: Type.Optional(
          Type.Object(
            {
              name: ObjectName('Name of the Secret, in the pool namespace (a kubernetes.io/tls Secret fits).'),
              certKey: Type.String({
                description: 'Key in the Secret that holds the PEM client certificate.',
                minLength: 1,
                maxLength: 253,
                default: 'tls.crt',
              }),
              keyKey: Type.String({
                description: 'Key in the Secret that holds the PEM private key of the client certificate.',
                minLength: 1,
                maxLength: 253,
                default: 'tls.key',
              }),
            },
            { description: 'Client certificate and key for mutual TLS (Redis tls-auth-clients). Unset: no client certificate.' },
          ),
        ),
        insecureSkipVerify: Type.Boolean({
          description:
            'Do not verify the server certificate (the connection is encrypted but anyone on the path can read it). For testing only: the pool reports a Warning Event (reason InsecureTLS) on every reconcile.',
          default: false,
        }),
      },
      {
        description: 'TLS towards Redis.',
        default: {},
        'x-kubernetes-validations': [
          {
            rule: '!has(self.caSecretRef) || self.enabled',
            message: 'tls.caSecretRef requires tls.enabled: true',
            fieldPath: '.caSecretRef',
          },
          {
            rule: '!has(self.serverName) || self.enabled',
            message: 'tls.serverName requires tls.enabled: true',
            fieldPath: '.serverName',
          },
          {
            rule: '!has(self.clientCertSecretRef) || self.enabled',
            message: 'tls.clientCertSecretRef requires tls.enabled: true',
            fieldPath: '.clientCertSecretRef',
          },
          {
            rule: '!self.insecureSkipVerify || self.enabled',
            message: 'tls.insecureSkipVerify requires tls.enabled: true',
            fieldPath: '.insecureSkipVerify',
          },
        ],
      },
    ),
    keyPrefix: Type.String({
      description:
        "Prefix of every Redis key of this pool (the pool name follows it). Immutable: changing it would orphan the pool's sessions.",
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$',
      default: 'spo',
      'x-kubernetes-validations': [
        { rule: 'self == oldSelf', message: "store.keyPrefix is immutable: changing it would orphan the pool's sessions" },
      ],
    }),
    durability: StringEnum(['leader', 'replica'], {
      description:
        'When a write is acknowledged: leader = once the master has it; replica = once at least one replica also has it (WAIT), so it survives a failover.',
      default: 'leader',
    }),
    allowDegradedMode: Type.Boolean({
      description:
        'Let workers stay ready and queue writes while the store is unreachable. When false, a worker that cannot reach the store reports not ready.',
      default: false,
    }),
  },
  { description: 'The session store: a Redis Cluster.' },
);
export type StoreSpec = Static<typeof StoreSchema>;

export const SessionsSchema = Type.Object(
  {
    ttlSeconds: Type.Integer({
      description: 'Idle time after which a session expires; every access slides it.',
      minimum: 1,
      maximum: 2592000,
      default: 3600,
      format: 'int32',
    }),
    anonymousTtlSeconds: Type.Integer({
      description: 'Idle time after which an anonymous (temporary) session expires. Not above ttlSeconds.',
      minimum: 1,
      maximum: 2592000,
      default: 300,
      format: 'int32',
    }),
    sweepIntervalSeconds: Type.Integer({
      description: 'How often expired sessions are swept from the indexes and lapsed leases released.',
      minimum: 1,
      maximum: 3600,
      default: 30,
      format: 'int32',
    }),
    maxSessionBytes: Type.Integer({
      description: 'Largest serialized session accepted; a bigger write is refused with a 4xx.',
      minimum: 1024,
      maximum: 67108864,
      default: 1048576,
      format: 'int32',
    }),
    idleSeconds: Type.Integer({
      description:
        "Idle time after which a session's activation ends: its worker releases the lease and drops its warm state, so an idle session costs no Redis command (docs/activation.md). The session itself lives on until ttlSeconds.",
      minimum: 1,
      maximum: 86400,
      default: 300,
      format: 'int32',
    }),
  },
  {
    description: 'Session lifetimes and limits.',
    default: {},
    'x-kubernetes-validations': [
      {
        rule: 'self.anonymousTtlSeconds <= self.ttlSeconds',
        message: 'sessions.anonymousTtlSeconds must not be greater than sessions.ttlSeconds',
        fieldPath: '.anonymousTtlSeconds',
      },
    ],
  },
);
export type SessionsSpec = Static<typeof SessionsSchema>;

export const MaintenanceSchema = Type.Object(
  {
    evacuateOnCordon: Type.Boolean({
      description:
        "Evacuate the pool's pods on a node as soon as it is cordoned or carries a drain taint, so kubectl drain finds them empty.",
      default: true,
    }),
    drainDeadlineSeconds: Type.Integer({
      description:
        'Longest an evacuation (node drain or scale-down) may take; past it, it stops with a Degraded condition and an Event saying what is left.',
      minimum: 10,
      maximum: 86400,
      default: 300,
      format: 'int32',
    }),
    evictAfterEvacuation: Type.Boolean({
      description:
        'Evict the evacuated pods of a cordoned node (Eviction API, so the disruption budget holds); the Deployment replaces them elsewhere.',
      default: true,
    }),
  },
  { description: 'What the operator does when nodes are drained.', default: {} },
);
export type MaintenanceSpec = Static<typeof MaintenanceSchema>;

export const SessionPoolSpecSchema = Type.Object(
  {
    replicas: Type.Optional(
      Type.Integer({
        description:
          'Number of workers. Required unless autoscaling.enabled; then it is only the starting size. Written by kubectl scale and a HorizontalPodAutoscaler through the scale subresource.',
        minimum: 0,
        maximum: 1000,
        format: 'int32',
      }),
    ),
    template: Type.Optional(PodTemplateSchema),
    worker: WorkerSchema,
    handler: Type.Optional(HandlerSchema),
    autoscaling: AutoscalingSchema,
    store: StoreSchema,
    sessions: SessionsSchema,
    sessionMode: StringEnum(SESSION_MODES, {
      description:
        'Where sessions live. Centralized: the store only. WorkerLocal: the legacy behaviour, in worker memory, routed by session id. Dual: the switch-over mode, writes to both, reads prefer the store. Switch WorkerLocal <-> Dual <-> Centralized one step at a time.',
      default: 'Centralized',
    }),
    maintenance: MaintenanceSchema,
    deletionPolicy: StringEnum(DELETION_POLICIES, {
      description:
        "What happens to the pool's sessions in Redis when the pool is deleted: Delete removes them, Retain keeps them (a new pool of the same name and keyPrefix finds them).",
      default: 'Delete',
    }),
  },
  {
    description: 'Desired state of the pool.',
    'x-kubernetes-validations': [
      {
        rule: 'has(self.replicas) || (has(self.autoscaling) && self.autoscaling.enabled)',
        message: 'spec.replicas is required unless spec.autoscaling.enabled is true',
        reason: 'FieldValueRequired',
        fieldPath: '.replicas',
      },
      {
        rule: 'self.sessionMode == oldSelf.sessionMode || self.sessionMode == "Dual" || oldSelf.sessionMode == "Dual"',
        message: 'spec.sessionMode must change through Dual (WorkerLocal -> Dual -> Centralized and back), so no session is lost',
        fieldPath: '.sessionMode',
      },
      {
        rule: '!has(self.handler) || self.handler.port != self.worker.port',
        message: 'spec.handler.port must differ from spec.worker.port (both containers share the pod network)',
        fieldPath: '.handler.port',
      },
    ],
  },
);
export type SessionPoolSpec = Static<typeof SessionPoolSpecSchema>;

export const WorkerSessionsSchema = Type.Object(
  {
    worker: Type.String({ description: 'Name of the worker pod.', maxLength: 253 }),
    sessions: Type.Integer({ description: 'Sessions the worker owns.', minimum: 0, format: 'int64' }),
  },
  { description: 'Sessions owned by one worker.' },
);
export type WorkerSessions = Static<typeof WorkerSessionsSchema>;

export const SessionsPerWorkerSchema = Type.Object(
  {
    min: Type.Integer({ description: 'Fewest sessions on one worker.', minimum: 0, format: 'int64' }),
    max: Type.Integer({ description: 'Most sessions on one worker.', minimum: 0, format: 'int64' }),
    mean: Type.Number({ description: 'Mean sessions per worker.', minimum: 0 }),
    workers: Type.Optional(
      Type.Array(WorkerSessionsSchema, {
        description: 'Sessions per worker, the busiest first, at most 50 entries (truncated is then true).',
        maxItems: 50,
      }),
    ),
    truncated: Type.Optional(Type.Boolean({ description: 'True when the pool has more workers than workers lists.' })),
  },
  { description: 'How sessions are spread over the workers (a bounded summary).' },
);
export type SessionsPerWorker = Static<typeof SessionsPerWorkerSchema>;

export const CurrentEvacuationSchema = Type.Object(
  {
    migration: Type.String({ description: 'Name of the SessionMigration doing the evacuation.', maxLength: 253 }),
    reason: StringEnum(['ScaleDown', 'NodeDrain', 'Manual'], {
      description: 'Why the pool is evacuating: ScaleDown, NodeDrain or Manual.',
    }),
    pods: Type.Optional(
      Type.Array(Type.String({ description: 'Name of a pod being evacuated.', maxLength: 253 }), {
        description: 'Pods being evacuated.',
        maxItems: 50,
      }),
    ),
    nodeName: Type.Optional(Type.String({ description: 'Node being drained, for a NodeDrain evacuation.', maxLength: 253 })),
    startTime: Type.String({ description: 'When the evacuation started.', format: 'date-time' }),
  },
  { description: 'The evacuation in progress, if any.' },
);
export type CurrentEvacuation = Static<typeof CurrentEvacuationSchema>;

export const SessionPoolStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ description: 'metadata.generation this status was computed from.', minimum: 0, format: 'int64' }),
    ),
    phase: Type.Optional(
      StringEnum(SESSION_POOL_PHASES, {
        description:
          'Summary of the pool state: Pending, Running, Scaling, Evacuating, Degraded or Terminating. Conditions hold the details.',
      }),
    ),
    replicas: Type.Optional(
      Type.Integer({ description: 'Worker pods that exist (the scale subresource reads it).', minimum: 0, format: 'int32' }),
    ),
    readyReplicas: Type.Optional(Type.Integer({ description: 'Worker pods that are ready.', minimum: 0, format: 'int32' })),
    desiredReplicas: Type.Optional(
      Type.Integer({
        description: 'Workers the operator aims for: spec.replicas, or the autoscaler decision.',
        minimum: 0,
        format: 'int32',
      }),
    ),
    selector: Type.Optional(
      Type.String({
        description: 'Label selector of the worker pods, in string form (the scale subresource and HorizontalPodAutoscalers read it).',
      }),
    ),
    activeSessions: Type.Optional(
      Type.Integer({ description: 'Live sessions of the pool, anonymous ones included.', minimum: 0, format: 'int64' }),
    ),
    anonymousSessions: Type.Optional(Type.Integer({ description: 'Live anonymous (temporary) sessions.', minimum: 0, format: 'int64' })),
    sessionsPerWorker: Type.Optional(SessionsPerWorkerSchema),
    lastScaleTime: Type.Optional(
      Type.String({ description: 'When the operator last changed the number of workers.', format: 'date-time' }),
    ),
    currentEvacuation: Type.Optional(CurrentEvacuationSchema),
    conditions: Type.Optional(Conditions('Conditions: Ready, Progressing, Degraded, StoreReachable.')),
  },
  { description: 'Observed state of the pool, written by the operator.' },
);
export type SessionPoolStatus = Static<typeof SessionPoolStatusSchema>;

export interface SessionPool {
  apiVersion: typeof API_VERSION;
  kind: typeof SESSION_POOL_KIND;
  metadata: V1ObjectMeta;
  spec: SessionPoolSpec;
  status?: SessionPoolStatus;
}

export interface SessionPoolList {
  apiVersion: typeof API_VERSION;
  kind: typeof SESSION_POOL_LIST_KIND;
  metadata: { resourceVersion?: string; continue?: string };
  items: SessionPool[];
}

export const SessionPoolCrd: CrdDefinition = {
  kind: SESSION_POOL_KIND,
  listKind: SESSION_POOL_LIST_KIND,
  plural: SESSION_POOL_PLURAL,
  singular: SESSION_POOL_SINGULAR,
  shortNames: SESSION_POOL_SHORT_NAMES,
  categories: CATEGORIES,
  description:
    'SessionPool runs a pool of stateless workers whose sessions live in a Redis Cluster, and moves sessions safely when workers are scaled down, drained or rebalanced.',
  spec: SessionPoolSpecSchema,
  status: SessionPoolStatusSchema,
  rootValidations: [
    {
      rule: "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52",
      message: 'metadata.name must be a DNS-1035 label of at most 52 characters (it names the Deployment and Service of the pool)',
    },
  ],
  printerColumns: [
    { name: 'Desired', type: 'integer', jsonPath: '.status.desiredReplicas', description: 'Workers the operator aims for.' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready workers.' },
    { name: 'Sessions', type: 'integer', jsonPath: '.status.activeSessions', description: 'Live sessions.' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.sessionMode', description: 'Session mode.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Summary of the pool state.' },
    {
      name: 'Store',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="StoreReachable")].status',
      description: 'Whether the store is reachable.',
      priority: 1,
    },
    {
      name: 'Autoscaling',
      type: 'boolean',
      jsonPath: '.spec.autoscaling.enabled',
      description: 'Whether autoscaling on sessions is on.',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation.' },
  ],
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
};
