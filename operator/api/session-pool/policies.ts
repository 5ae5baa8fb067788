// What a SessionPool does over time: autoscaling on sessions, session lifetimes and limits,
// and node maintenance (drain). Part of the SessionPool schema (../session-pool.ts).
import Type, { type Static } from 'typebox';

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
