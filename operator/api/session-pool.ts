// SessionPool: a pool of stateless workers whose sessions live in a Redis Cluster. The spec
// and status schemas (here, assembled from the parts in session-pool/) are the one source of
// truth: crds/sessionpools.yaml, the types and docs/api-reference.md are generated from them. A field with a `default` is required in
// the TypeScript type (the apiserver fills it in before anyone reads the object) and optional
// in the CRD.
import Type, { type Static } from 'typebox';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { API_VERSION } from './meta.ts';
import { CATEGORIES, StringEnum, type CrdDefinition } from './meta.ts';
import { AutoscalingSchema, MaintenanceSchema, SessionsSchema } from './session-pool/policies.ts';
import { SessionPoolStatusSchema, type SessionPoolStatus } from './session-pool/status.ts';
import { StoreSchema } from './session-pool/store.ts';
import { HandlerSchema, PodTemplateSchema, WorkerSchema } from './session-pool/workload.ts';

// The parts of the schema, one concern each.
export * from './session-pool/workload.ts';
export * from './session-pool/store.ts';
export * from './session-pool/policies.ts';
export * from './session-pool/status.ts';

export const SESSION_POOL_KIND = 'SessionPool';
export const SESSION_POOL_LIST_KIND = 'SessionPoolList';
export const SESSION_POOL_PLURAL = 'sessionpools';
export const SESSION_POOL_SINGULAR = 'sessionpool';
export const SESSION_POOL_SHORT_NAMES = ['spool', 'sp'];

export const SESSION_MODES = ['Centralized', 'Dual', 'WorkerLocal'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];
export const DELETION_POLICIES = ['Delete', 'Retain'] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];

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
