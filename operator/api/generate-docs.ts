// Writes docs/api-reference.md from the same schemas as the CRDs: `npm run gen:docs`. A unit
// test fails when the committed file differs from what this renders.
import { writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { fileURLToPath } from 'node:url';
import { openApiSchema, type JsonSchema } from './crd.ts';
import { CRD_DEFINITIONS } from './generate-crds.ts';
import { API_VERSION, GROUP, VERSION, type CrdDefinition, type ValidationRule } from './meta.ts';

export const API_REFERENCE_PATH = fileURLToPath(new URL('../../docs/api-reference.md', import.meta.url));

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function text(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

function code(value: unknown): string {
  return `\`${cell(typeof value === 'string' ? value : JSON.stringify(value))}\``;
}

function typeOf(node: JsonSchema): string {
  if (node['x-kubernetes-int-or-string'] === true) return 'int-or-string';
  const type = node.type as string | undefined;
  if (type === 'array') return `[]${typeOf((node.items ?? {}) as JsonSchema)}`;
  if (type === 'object' && node.additionalProperties) return `map[string]${typeOf(node.additionalProperties as JsonSchema)}`;
  if (type === 'object' && node['x-kubernetes-preserve-unknown-fields'] === true) return 'object (free-form)';
  return node.format ? `${type} (${text(node.format)})` : String(type);
}

function constraints(node: JsonSchema): string[] {
  const out: string[] = [];
  if (Array.isArray(node.enum)) out.push(`one of ${node.enum.map(code).join(', ')}`);
  if (node.minimum !== undefined) out.push(`min ${text(node.minimum)}`);
  if (node.maximum !== undefined) out.push(`max ${text(node.maximum)}`);
  if (node.minLength !== undefined) out.push(`min length ${text(node.minLength)}`);
  if (node.maxLength !== undefined) out.push(`max length ${text(node.maxLength)}`);
  if (node.minItems !== undefined) out.push(`min items ${text(node.minItems)}`);
  if (node.maxItems !== undefined) out.push(`max items ${text(node.maxItems)}`);
  if (node.maxProperties !== undefined) out.push(`max entries ${text(node.maxProperties)}`);
  if (node['x-kubernetes-list-type'] === 'set') out.push('unique items');
  if (node['x-kubernetes-list-type'] === 'map')
    out.push(`list map keyed by ${((node['x-kubernetes-list-map-keys'] as string[] | undefined) ?? []).map(code).join(', ')}`);
  if (node.pattern !== undefined) out.push(`pattern ${code(node.pattern)}`);
  for (const rule of (node['x-kubernetes-validations'] as ValidationRule[] | undefined) ?? []) out.push(`rule: ${cell(rule.message)}`);
  // Scalar items and map values have no row of their own: their checks go with the field.
  const items = node.items as JsonSchema | undefined;
  if (items && !items.properties && constraints(items).length > 0) out.push(`each item: ${constraints(items).join(', ')}`);
  const values = node.additionalProperties as JsonSchema | undefined;
  if (values && !values.properties && constraints(values).length > 0) out.push(`each value: ${constraints(values).join(', ')}`);
  return out;
}

interface Row {
  path: string;
  node: JsonSchema;
  required: boolean;
}

function rows(node: JsonSchema, path: string, required: boolean, out: Row[]): Row[] {
  out.push({ path, node, required });
  const requiredNames = new Set((node.required as string[] | undefined) ?? []);
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>))
    rows(child, `${path}.${name}`, requiredNames.has(name), out);
  const items = node.items as JsonSchema | undefined;
  if (items?.properties)
    for (const [name, child] of Object.entries(items.properties as Record<string, JsonSchema>))
      rows(child, `${path}[].${name}`, ((items.required as string[] | undefined) ?? []).includes(name), out);
  const values = node.additionalProperties as JsonSchema | undefined;
  if (values?.properties)
    for (const [name, child] of Object.entries(values.properties as Record<string, JsonSchema>))
      rows(child, `${path}.*.${name}`, false, out);
  return out;
}

function fieldTable(root: JsonSchema, top: 'spec' | 'status'): string[] {
  const node = (root.properties as Record<string, JsonSchema>)[top];
  if (!node) return [];
  const lines = ['| Field | Type | Required | Default | Validation | Description |', '| --- | --- | --- | --- | --- | --- |'];
  for (const row of rows(node, top, top === 'spec', [])) {
    const def = row.node.default === undefined ? '' : code(row.node.default);
    lines.push(
      `| \`${row.path}\` | ${cell(typeOf(row.node))} | ${row.required ? 'yes' : ''} | ${def} | ${constraints(row.node).join('; ')} | ${cell(text(row.node.description ?? ''))} |`,
    );
  }
  return lines;
}

function rulesTable(root: JsonSchema): string[] {
  const lines = ['| On | Rule (CEL) | Message |', '| --- | --- | --- |'];
  const visit = (node: JsonSchema, path: string) => {
    for (const rule of (node['x-kubernetes-validations'] as ValidationRule[] | undefined) ?? []) {
      const where = path === '' ? '(object)' : `\`${path}\``;
      const on = rule.rule.includes('oldSelf') ? `${where} (on update)` : where;
      lines.push(`| ${on} | ${code(rule.rule)} | ${cell(rule.message)} |`);
    }
    for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>))
      visit(child, path === '' ? name : `${path}.${name}`);
    if (node.items) visit(node.items as JsonSchema, `${path}[]`);
  };
  visit(root, '');
  return lines;
}

function section(definition: CrdDefinition): string[] {
  const root = openApiSchema(definition);
  const subresources = definition.scale
    ? `status, scale (\`${definition.scale.specReplicasPath}\`, \`${definition.scale.statusReplicasPath}\`, selector \`${definition.scale.labelSelectorPath}\`)`
    : 'status';
  return [
    `## ${definition.kind}`,
    '',
    definition.description,
    '',
    `- API version: \`${API_VERSION}\`, kind \`${definition.kind}\`, namespaced`,
    `- Resource: \`${definition.plural}.${GROUP}\`; short names ${definition.shortNames.map((name) => `\`${name}\``).join(', ')}; categories ${definition.categories.map((name) => `\`${name}\``).join(', ')}`,
    `- Subresources: ${subresources}`,
    '',
    '### Columns of `kubectl get`',
    '',
    '| Column | JSONPath | Shown | Description |',
    '| --- | --- | --- | --- |',
    ...definition.printerColumns.map(
      (column) =>
        `| ${column.name} | ${code(column.jsonPath)} | ${column.priority ? '`-o wide`' : 'always'} | ${cell(column.description)} |`,
    ),
    '',
    '### Spec',
    '',
    ...fieldTable(root, 'spec'),
    '',
    '### Status',
    '',
    ...fieldTable(root, 'status'),
    '',
    '### Validation rules',
    '',
    'Checked by the apiserver (CEL, `x-kubernetes-validations`); a refused object gets the message below.',
    '',
    ...rulesTable(root),
    '',
  ];
}

export function renderApiReference(): string {
  return [
    '# API reference',
    '',
    '<!-- Generated by operator/api/generate-docs.ts from the schemas in operator/api/. Do not edit: run `npm run gen:docs`. -->',
    '',
    `Group \`${GROUP}\`, version \`${VERSION}\`. The CRDs are in \`crds/\` (\`kubectl apply --server-side -f crds/\`); \`kubectl explain sessionpools.spec\` shows the same descriptions.`,
    'Fields with a default are filled in by the apiserver when left out. Examples are in `examples/`.',
    '',
    ...CRD_DEFINITIONS.map((definition) => `- [${definition.kind}](#${definition.kind.toLowerCase()})`),
    '',
    ...CRD_DEFINITIONS.flatMap(section),
  ].join('\n');
}

/** The reference as committed: rendered, then formatted with the repository's prettier settings (so `npm run lint` agrees). */
export async function renderApiReferenceFile(): Promise<string> {
  const options = (await resolveConfig(API_REFERENCE_PATH)) ?? {};
  return format(renderApiReference(), { ...options, parser: 'markdown' });
}

if (import.meta.main) {
  writeFileSync(API_REFERENCE_PATH, await renderApiReferenceFile());
  console.log('wrote docs/api-reference.md');
}
