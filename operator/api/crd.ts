// Turns the TypeBox schemas into CustomResourceDefinitions the apiserver accepts: a structural
// OpenAPI v3 schema (every node typed, no TypeBox-internal or unsupported keywords), defaulted
// fields left out of `required`, enums typed, records as additionalProperties.
import type { TSchema } from 'typebox';
import { GROUP, VERSION, type CrdDefinition } from './meta.ts';

/** A JSON Schema node as it goes into a CRD. */
export type JsonSchema = { [key: string]: unknown };

/** Keywords copied as they are, in this order (after description and type). */
const COPIED_KEYWORDS = [
  'format',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'nullable',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
] as const;
/** Keywords handled below (or dropped on purpose: additionalProperties false is implied by pruning). */
const HANDLED_KEYWORDS = new Set<string>([
  'description',
  'type',
  'required',
  'properties',
  'patternProperties',
  'items',
  'additionalProperties',
  'anyOf',
  'x-kubernetes-validations',
  ...COPIED_KEYWORDS,
]);

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonTypeOf(values: unknown[], path: string): string {
  const types = new Set(values.map((value) => (Number.isInteger(value) ? 'integer' : typeof value)));
  if (types.size !== 1) throw new Error(`${path}: enum mixes value types`);
  const [type] = [...types];
  if (type !== 'string' && type !== 'integer' && type !== 'boolean' && type !== 'number')
    throw new Error(`${path}: unsupported enum value type ${String(type)}`);
  return type;
}

/**
 * The CRD form of one schema node. Only own enumerable keys are read, so TypeBox's internal
 * `~kind`/`~optional` markers never leave; an unknown keyword throws rather than slipping into
 * a CRD the apiserver would refuse.
 */
export function toStructuralSchema(schema: TSchema | JsonSchema, path = '$'): JsonSchema {
  const node = schema as JsonSchema;
  for (const key of Object.keys(node)) {
    if (!HANDLED_KEYWORDS.has(key)) throw new Error(`${path}: keyword '${key}' is not supported in a CRD schema`);
  }
  const out: JsonSchema = {};
  if (typeof node.description === 'string') out.description = node.description;

  let type = node.type;
  let anyOf: JsonSchema[] | undefined;
  if (Array.isArray(node.anyOf)) {
    const members = node.anyOf as JsonSchema[];
    if (node['x-kubernetes-int-or-string'] === true) {
      anyOf = members.map((member, index) => toStructuralSchema(member, `${path}.anyOf[${index}]`));
    } else if (members.every((member) => 'const' in member)) {
      const values = members.map((member) => member.const);
      out.enum = values;
      type = jsonTypeOf(values, path);
    } else {
      throw new Error(`${path}: anyOf is only supported for int-or-string and unions of literals`);
    }
  }
  if (type === undefined && Array.isArray(node.enum)) type = jsonTypeOf(node.enum as unknown[], path);
  if (type !== undefined) out.type = type;

  for (const key of COPIED_KEYWORDS) {
    if (node[key] !== undefined && out[key] === undefined) out[key] = node[key];
  }

  if (isObject(node.properties)) {
    const properties: JsonSchema = {};
    for (const [name, child] of Object.entries(node.properties))
      properties[name] = toStructuralSchema(child as JsonSchema, `${path}.${name}`);
    // A defaulted field is filled in by the apiserver, so the user need not give it.
    const required = ((node.required as string[] | undefined) ?? []).filter(
      (name) => (properties[name] as JsonSchema).default === undefined,
    );
    if (required.length > 0) out.required = required;
    out.properties = properties;
  }
  if (isObject(node.patternProperties)) {
    const patterns = Object.entries(node.patternProperties);
    const [first] = patterns;
    if (patterns.length !== 1 || first === undefined || first[0] !== '^.*$')
      throw new Error(`${path}: only records keyed by any string are supported`);
    out.additionalProperties = toStructuralSchema(first[1] as JsonSchema, `${path}.*`);
  }
  if (isObject(node.additionalProperties)) out.additionalProperties = toStructuralSchema(node.additionalProperties, `${path}.*`);
  if (isObject(node.items)) out.items = toStructuralSchema(node.items, `${path}[*]`);
  if (anyOf) out.anyOf = anyOf;
  // The apiserver checks a default against the CEL rules as written, before nested defaults
  // apply: write an object default ({}) out in full, with the defaults of its fields.
  if (isObject(out.default)) out.default = withNestedDefaults(out, out.default);
  if (Array.isArray(node['x-kubernetes-validations'])) out['x-kubernetes-validations'] = node['x-kubernetes-validations'];
  return out;
}

function withNestedDefaults(node: JsonSchema, value: JsonSchema): JsonSchema {
  const result: JsonSchema = { ...value };
  if (!isObject(node.properties)) return result;
  for (const [name, child] of Object.entries(node.properties) as [string, JsonSchema][]) {
    if (result[name] === undefined && child.default !== undefined) result[name] = structuredClone(child.default);
    const current = result[name];
    if (isObject(current)) result[name] = withNestedDefaults(child, current);
  }
  return result;
}

/** The standard top-level fields every custom resource has. */
const OBJECT_ROOT_PROPERTIES: JsonSchema = {
  apiVersion: {
    description:
      'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.',
    type: 'string',
  },
  kind: {
    description:
      'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.',
    type: 'string',
  },
  // The apiserver allows nothing else under metadata (not even a description).
  metadata: { type: 'object' },
};

/** The whole openAPIV3Schema of a CRD. */
export function openApiSchema(definition: CrdDefinition): JsonSchema {
  const schema: JsonSchema = {
    description: definition.description,
    type: 'object',
    required: ['spec'],
    properties: {
      ...OBJECT_ROOT_PROPERTIES,
      spec: toStructuralSchema(definition.spec, 'spec'),
      status: toStructuralSchema(definition.status, 'status'),
    },
  };
  if (definition.rootValidations && definition.rootValidations.length > 0) schema['x-kubernetes-validations'] = definition.rootValidations;
  return schema;
}

/** The CustomResourceDefinition object for one kind. */
export function buildCrd(definition: CrdDefinition): JsonSchema {
  const subresources: JsonSchema = { status: {} };
  if (definition.scale) subresources.scale = { ...definition.scale };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${definition.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'session-pool-operator', 'app.kubernetes.io/part-of': 'session-pool-operator' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: definition.kind,
        listKind: definition.listKind,
        plural: definition.plural,
        singular: definition.singular,
        shortNames: definition.shortNames,
        categories: definition.categories,
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources,
          additionalPrinterColumns: definition.printerColumns.map((column) => ({ ...column })),
          schema: { openAPIV3Schema: openApiSchema(definition) },
        },
      ],
    },
  };
}

/** Visits every schema node with its dotted path (`spec.store.endpoints[*]`). */
export function walkSchema(
  node: JsonSchema,
  path: string,
  visit: (node: JsonSchema, path: string, isProperty: boolean) => void,
  isProperty = true,
): void {
  visit(node, path, isProperty);
  if (isObject(node.properties)) {
    for (const [name, child] of Object.entries(node.properties))
      walkSchema(child as JsonSchema, path ? `${path}.${name}` : name, visit, true);
  }
  if (isObject(node.additionalProperties)) walkSchema(node.additionalProperties, `${path}.*`, visit, false);
  if (isObject(node.items)) walkSchema(node.items, `${path}[*]`, visit, false);
}
