// The observed state of a SessionPool, written by the operator. Part of the SessionPool
// schema (../session-pool.ts).
import Type, { type Static } from 'typebox';
import { Conditions, StringEnum } from '../meta.ts';

export const SESSION_POOL_PHASES = ['Pending', 'Running', 'Scaling', 'Evacuating', 'Degraded', 'Terminating'] as const;
export type SessionPoolPhase = (typeof SESSION_POOL_PHASES)[number];
/** Condition types the pool reconciler sets. */
export const SESSION_POOL_CONDITIONS = ['Ready', 'Progressing', 'Degraded', 'StoreReachable'] as const;
export type SessionPoolConditionType = (typeof SESSION_POOL_CONDITIONS)[number];

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
