// API group, versions, names and the schema building blocks shared by both CRDs. Everything in
// operator/api/ is the one source of truth: the CRD YAML in crds/, the TypeScript types the
// operator uses and docs/api-reference.md are all generated from these TypeBox schemas.
import Type, { type Static, type TSchema } from 'typebox';

export const GROUP = 'dspex.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Every kind of this operator is in this category: `kubectl get dspex`. */
export const CATEGORIES = ['dspex'];

/** Label every pool child (Deployment, pods, Service, PDB) carries, value = the pool's name. */
export const POOL_LABEL = `${GROUP}/pool`;
/** Finalizer the operator puts on a SessionPool to clean its sessions up before deletion. */
export const POOL_FINALIZER = `${GROUP}/sessions`;

/** Kubernetes object name (RFC 1123 subdomain). */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/**
 * A key of a Secret: letters, digits, '-', '_' and '.', never '/' and never '..' (the rule of
 * Kubernetes' own Secret keys). A key becomes a file name under a mount, so nothing may climb.
 */
export const SECRET_KEY_PATTERN = '^\\.?[-_A-Za-z0-9]+(\\.[-_A-Za-z0-9]+)*\\.?$';
/** A session id: base64url, 22 to 64 characters (the store's and the worker's rule). */
export const SESSION_ID_PATTERN = '^[A-Za-z0-9_-]{22,64}$';
/** A TCP port in `host:port`: 1 to 65535, no leading zero. */
export const PORT_SUFFIX_PATTERN = ':([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';

/** A Kubernetes resource quantity such as `500m`, `1Gi`, `2`. */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

/** A string enum with `type: string` (TypeBox's Enum leaves the type out; a structural schema needs it). */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description: string; default?: T[number] }) {
  return Type.Enum([...values] as T[number][], { type: 'string', ...options });
}

/** Name of an object in the same namespace. */
export function ObjectName(description: string) {
  return Type.String({ description, minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN_PATTERN });
}

/** A key in a Secret of the pool namespace (SECRET_KEY_PATTERN). */
export function SecretKey(description: string, options: { default?: string } = {}) {
  return Type.String({ description, minLength: 1, maxLength: 253, pattern: SECRET_KEY_PATTERN, ...options });
}

/** A resource quantity: an integer or a string such as `500m` (x-kubernetes-int-or-string). */
export function Quantity(description: string) {
  return Type.Unsafe<string | number>({
    description,
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
  });
}

export const ResourceRequirementsSchema = Type.Object(
  {
    requests: Type.Optional(
      Type.Record(Type.String(), Quantity('Amount of the resource requested.'), {
        description: 'Minimum compute resources the worker container needs, by resource name (cpu, memory, ...).',
        maxProperties: 16,
      }),
    ),
    limits: Type.Optional(
      Type.Record(Type.String(), Quantity('Maximum amount of the resource.'), {
        description: 'Maximum compute resources the worker container may use, by resource name (cpu, memory, ...).',
        maxProperties: 16,
      }),
    ),
  },
  { description: 'Compute resources of the worker container, as in a container spec.' },
);
export type ResourceRequirements = Static<typeof ResourceRequirementsSchema>;

/** The standard `metav1.Condition` shape. */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({
      description: 'Type of the condition in CamelCase, e.g. Ready.',
      minLength: 1,
      maxLength: 316,
      pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    }),
    status: StringEnum(['True', 'False', 'Unknown'], { description: 'Status of the condition: True, False or Unknown.' }),
    observedGeneration: Type.Optional(
      Type.Integer({
        description: 'metadata.generation the condition was set from; older than the current generation means the condition is stale.',
        minimum: 0,
        format: 'int64',
      }),
    ),
    lastTransitionTime: Type.String({ description: 'When the condition last changed status (RFC 3339).', format: 'date-time' }),
    reason: Type.String({
      description: 'Machine-readable reason for the last transition, in CamelCase.',
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    }),
    message: Type.String({ description: 'Human-readable explanation of the condition; may be empty.', maxLength: 32768 }),
  },
  { description: 'One aspect of the current state of the object (metav1.Condition).' },
);
export type Condition = Static<typeof ConditionSchema>;

export function Conditions(description: string) {
  return Type.Array(ConditionSchema, {
    description,
    maxItems: 16,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });
}

/** A CEL validation rule as the apiserver takes it under x-kubernetes-validations. */
export interface ValidationRule {
  rule: string;
  message: string;
  /** JSONPath (relative to the node) of the field to report, e.g. `.maxReplicas`. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** An additional printer column of `kubectl get`. */
export interface PrinterColumn {
  name: string;
  type: 'integer' | 'number' | 'string' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
  format?: string;
}

/** What generate-crds.ts needs to write one CRD, and generate-docs.ts to document it. */
export interface CrdDefinition {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
  description: string;
  spec: TSchema;
  status: TSchema;
  /** Rules on the whole object (e.g. on metadata.name). */
  rootValidations?: ValidationRule[];
  printerColumns: PrinterColumn[];
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string };
}
