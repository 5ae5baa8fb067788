// SessionMigration: moves sessions of one SessionPool between its workers (Evacuate, Migrate,
// Rebalance), batched, fenced and journaled so that it resumes or rolls back after a failure.
// The schemas below are the one source of truth for crds/sessionmigrations.yaml, the types and
// docs/api-reference.md.
import Type, { type Static } from 'typebox';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { API_VERSION } from './meta.ts';
import { CATEGORIES, Conditions, ObjectName, SESSION_ID_PATTERN, StringEnum, type CrdDefinition } from './meta.ts';

export const SESSION_MIGRATION_KIND = 'SessionMigration';
export const SESSION_MIGRATION_LIST_KIND = 'SessionMigrationList';
export const SESSION_MIGRATION_PLURAL = 'sessionmigrations';
export const SESSION_MIGRATION_SINGULAR = 'sessionmigration';
export const SESSION_MIGRATION_SHORT_NAMES = ['smig'];

export const MIGRATION_TYPES = ['Evacuate', 'Migrate', 'Rebalance'] as const;
export type MigrationType = (typeof MIGRATION_TYPES)[number];
export const MIGRATION_PHASES = ['Pending', 'Planning', 'Running', 'Succeeded', 'Failed', 'RolledBack'] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];
/** Phases after which nothing changes any more. */
export const TERMINAL_MIGRATION_PHASES: readonly MigrationPhase[] = ['Succeeded', 'Failed', 'RolledBack'];
export const ON_FAILURE_POLICIES = ['Rollback', 'Stop'] as const;
export type OnFailurePolicy = (typeof ON_FAILURE_POLICIES)[number];

const MAX_SESSION_IDS = 5000;

const PodName = (description: string) => Type.String({ description, minLength: 1, maxLength: 253 });

export const EvacuateSchema = Type.Object(
  {
    pods: Type.Optional(
      Type.Array(PodName('Name of a worker pod of the pool.'), {
        description: 'Worker pods whose sessions move to the other ready workers. Set this or nodeName.',
        minItems: 1,
        maxItems: 100,
        'x-kubernetes-list-type': 'set',
      }),
    ),
    nodeName: Type.Optional(
      Type.String({ description: 'Node whose pool pods are evacuated. Set this or pods.', minLength: 1, maxLength: 253 }),
    ),
    evictPods: Type.Boolean({
      description:
        'Evict the source pods once they are empty (Eviction API, so the disruption budget holds). Emptied pods are evicted anyway unless keepSourcePods is true; this field is kept for compatibility.',
      default: false,
    }),
    keepSourcePods: Type.Boolean({
      description:
        'Keep the source pods once every session has moved off them (they stay draining and unready). By default they are evicted (Eviction API: the disruption budget holds, until the deadline at most) and their Deployment replaces them.',
      default: false,
    }),
  },
  {
    description: 'Evacuate: every session of the named pods, or of every pool pod on a node, moves to other ready workers.',
    'x-kubernetes-validations': [
      { rule: 'has(self.pods) != has(self.nodeName)', message: 'evacuate needs exactly one of pods (worker pod names) or nodeName' },
    ],
  },
);
export type EvacuateSpec = Static<typeof EvacuateSchema>;

export const MigrateSchema = Type.Object(
  {
    sessionIds: Type.Array(
      Type.String({
        description: 'A session id: base64url, 22 to 64 characters.',
        minLength: 22,
        maxLength: 64,
        pattern: SESSION_ID_PATTERN,
      }),
      {
        description: `Sessions to move, at most ${MAX_SESSION_IDS}.`,
        minItems: 1,
        maxItems: MAX_SESSION_IDS,
        'x-kubernetes-list-type': 'set',
      },
    ),
    targetWorker: PodName('Worker pod of the pool the sessions move to; it must be ready.'),
  },
  { description: 'Migrate: the named sessions move to the named worker.' },
);
export type MigrateSpec = Static<typeof MigrateSchema>;

export const RebalanceSchema = Type.Object(
  {
    weights: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Integer({ description: 'Relative weight of the worker; 0 empties it.', minimum: 0, maximum: 1000, format: 'int32' }),
        {
          description:
            'Relative share of sessions per worker pod name; workers not listed weigh 1. Unset: an even distribution. At least one listed weight is above 0 (to empty workers, use an Evacuate).',
          maxProperties: 1000,
          'x-kubernetes-validations': [
            {
              rule: 'size(self) == 0 || self.exists(worker, self[worker] > 0)',
              message: 'rebalance.weights must give at least one worker a weight above 0; to empty workers, use an Evacuate',
            },
          ],
        },
      ),
    ),
    maxMovesPerRound: Type.Integer({
      description: 'Most sessions moved per round, so a rebalance never becomes a storm.',
      minimum: 1,
      maximum: 100000,
      default: 1000,
      format: 'int32',
    }),
    tolerancePercent: Type.Integer({
      description: 'A worker within this percentage of its target share is left alone; a plan with no worker outside it moves nothing.',
      minimum: 0,
      maximum: 100,
      default: 10,
      format: 'int32',
    }),
  },
  { description: 'Rebalance: sessions are redistributed toward an even (or weighted) distribution.' },
);
export type RebalanceSpec = Static<typeof RebalanceSchema>;

export const SessionMigrationSpecSchema = Type.Object(
  {
    poolRef: Type.Object(
      { name: ObjectName('Name of the SessionPool.') },
      { description: 'The SessionPool, in the same namespace, whose sessions move.' },
    ),
    type: StringEnum(MIGRATION_TYPES, {
      description:
        'Kind of migration: Evacuate, Migrate or Rebalance. The field of the same name (evacuate, migrate, rebalance) must be set, and only it.',
    }),
    evacuate: Type.Optional(EvacuateSchema),
    migrate: Type.Optional(MigrateSchema),
    rebalance: Type.Optional(RebalanceSchema),
    dryRun: Type.Boolean({ description: 'Only plan: write the plan to status.plan and move nothing.', default: false }),
    batchSize: Type.Integer({
      description: 'Sessions moved per batch; each batch is journaled.',
      minimum: 1,
      maximum: 10000,
      default: 500,
      format: 'int32',
    }),
    deadlineSeconds: Type.Integer({
      description:
        'Longest the migration may run, waits for in-flight work included; past it the migration fails (and rolls back per onFailure).',
      minimum: 1,
      maximum: 86400,
      default: 300,
      format: 'int32',
    }),
    onFailure: StringEnum(ON_FAILURE_POLICIES, {
      description:
        'On failure (target gone, store error, deadline): Rollback returns moved sessions to their previous owners (phase RolledBack); Stop keeps what moved (phase Failed).',
      default: 'Rollback',
    }),
  },
  {
    description: 'What to move. Immutable once created.',
    'x-kubernetes-validations': [
      {
        rule: "has(self.evacuate) == (self.type == 'Evacuate')",
        message: 'spec.evacuate must be set when spec.type is Evacuate, and only then',
        fieldPath: '.evacuate',
      },
      {
        rule: "has(self.migrate) == (self.type == 'Migrate')",
        message: 'spec.migrate must be set when spec.type is Migrate, and only then',
        fieldPath: '.migrate',
      },
      {
        rule: "has(self.rebalance) == (self.type == 'Rebalance')",
        message: 'spec.rebalance must be set when spec.type is Rebalance, and only then',
        fieldPath: '.rebalance',
      },
      { rule: 'self == oldSelf', message: 'spec is immutable: delete this SessionMigration and create a new one' },
    ],
  },
);
export type SessionMigrationSpec = Static<typeof SessionMigrationSpecSchema>;

export const PlannedMoveSchema = Type.Object(
  {
    from: Type.String({ description: 'Worker the sessions leave (empty for unowned sessions).', maxLength: 253 }),
    to: Type.String({ description: 'Worker the sessions go to.', maxLength: 253 }),
    sessions: Type.Integer({ description: 'Sessions moving from -> to.', minimum: 0, format: 'int64' }),
  },
  { description: 'Sessions moving from one worker to another.' },
);
export type PlannedMove = Static<typeof PlannedMoveSchema>;

export const MigrationPlanSchema = Type.Object(
  {
    totalSessions: Type.Integer({ description: 'Sessions the plan moves.', minimum: 0, format: 'int64' }),
    moves: Type.Optional(
      Type.Array(PlannedMoveSchema, {
        description: 'Moves by source and target worker, the largest first, at most 100 entries (truncated is then true).',
        maxItems: 100,
      }),
    ),
    truncated: Type.Optional(Type.Boolean({ description: 'True when moves lists only the largest of more pairs.' })),
  },
  { description: 'The plan: how many sessions move from where to where. A dry run stops here.' },
);
export type MigrationPlan = Static<typeof MigrationPlanSchema>;

export const MigrationProgressSchema = Type.Object(
  {
    moved: Type.Integer({ description: 'Sessions moved so far.', minimum: 0, format: 'int64' }),
    remaining: Type.Integer({ description: 'Sessions still to move.', minimum: 0, format: 'int64' }),
    failed: Type.Integer({
      description: 'Sessions that could not be moved (owner or epoch changed, store error).',
      minimum: 0,
      format: 'int64',
    }),
  },
  { description: 'How far the migration got.' },
);
export type MigrationProgress = Static<typeof MigrationProgressSchema>;

export const SessionMigrationStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ description: 'metadata.generation this status was computed from.', minimum: 0, format: 'int64' }),
    ),
    phase: Type.Optional(
      StringEnum(MIGRATION_PHASES, { description: 'Pending, Planning, Running, then Succeeded, Failed or RolledBack.' }),
    ),
    plan: Type.Optional(MigrationPlanSchema),
    progress: Type.Optional(MigrationProgressSchema),
    startTime: Type.Optional(Type.String({ description: 'When the migration started planning.', format: 'date-time' })),
    completionTime: Type.Optional(
      Type.String({ description: 'When the migration reached Succeeded, Failed or RolledBack.', format: 'date-time' }),
    ),
    reason: Type.Optional(
      Type.String({
        description: 'Machine-readable reason of the last phase change, in CamelCase (e.g. DeadlineExceeded, TargetGone).',
        maxLength: 1024,
      }),
    ),
    message: Type.Optional(Type.String({ description: 'Human-readable explanation of the last phase change.', maxLength: 32768 })),
    journalKey: Type.Optional(
      Type.String({ description: 'Redis key of the journal of this migration, for resume or rollback after a restart.', maxLength: 1024 }),
    ),
    conditions: Type.Optional(Conditions('Conditions of the migration.')),
  },
  { description: 'Observed state of the migration, written by the operator.' },
);
export type SessionMigrationStatus = Static<typeof SessionMigrationStatusSchema>;

export interface SessionMigration {
  apiVersion: typeof API_VERSION;
  kind: typeof SESSION_MIGRATION_KIND;
  metadata: V1ObjectMeta;
  spec: SessionMigrationSpec;
  status?: SessionMigrationStatus;
}

export interface SessionMigrationList {
  apiVersion: typeof API_VERSION;
  kind: typeof SESSION_MIGRATION_LIST_KIND;
  metadata: { resourceVersion?: string; continue?: string };
  items: SessionMigration[];
}

export const SessionMigrationCrd: CrdDefinition = {
  kind: SESSION_MIGRATION_KIND,
  listKind: SESSION_MIGRATION_LIST_KIND,
  plural: SESSION_MIGRATION_PLURAL,
  singular: SESSION_MIGRATION_SINGULAR,
  shortNames: SESSION_MIGRATION_SHORT_NAMES,
  categories: CATEGORIES,
  description:
    'SessionMigration moves sessions of a SessionPool between its workers: Evacuate (pods or a node), Migrate (named sessions) or Rebalance. Moves are batched, fenced and journaled; on failure the migration rolls back.',
  spec: SessionMigrationSpecSchema,
  status: SessionMigrationStatusSchema,
  printerColumns: [
    { name: 'Pool', type: 'string', jsonPath: '.spec.poolRef.name', description: 'The SessionPool.' },
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Kind of migration.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Phase of the migration.' },
    { name: 'Moved', type: 'integer', jsonPath: '.status.progress.moved', description: 'Sessions moved.' },
    { name: 'Remaining', type: 'integer', jsonPath: '.status.progress.remaining', description: 'Sessions still to move.' },
    { name: 'DryRun', type: 'boolean', jsonPath: '.spec.dryRun', description: 'Plan only.', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation.' },
  ],
};
