// Copies the generated CRDs (crds/*.yaml at the repository root, from `npm run gen:crds`)
// into the chart as templates, so that `helm upgrade` upgrades them (Helm never upgrades a
// chart's crds/ folder). Each copy is wrapped in the `crds.enabled` guard, carries the
// `helm.sh/resource-policy: keep` annotation behind `crds.keep`, and the chart's labels.
//
//   node_modules/.bin/node charts/sync-crds.ts          write charts/session-pool-operator/templates/crds/
//   node_modules/.bin/node charts/sync-crds.ts --check  exit 1 when the chart's copies differ
//
// operator/chart/crds-sync.test.ts runs the check in the unit tests.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const sourceDir = path.join(repoRoot, 'crds');
export const chartDir = path.join(repoRoot, 'charts/session-pool-operator');
export const targetDir = path.join(chartDir, 'templates/crds');
/** The CRDs the chart must carry; any other crds/*.yaml is carried too. */
export const REQUIRED_CRDS = ['sessionpools.yaml', 'sessionmigrations.yaml'];

/** Labels the chart sets on every object; a CRD's own label with one of these keys is dropped. */
const CHART_LABEL_KEYS = new Set([
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/component',
  'app.kubernetes.io/version',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/part-of',
  'helm.sh/chart',
]);
const KEEP_ANNOTATION = 'helm.sh/resource-policy';
const ANNOTATIONS_MARK = '__spo_annotations__';
const KEEP_MARK = '__spo_keep__';
const LABELS_MARK = '__spo_labels__';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw new Error(`${what} is not a map`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
}

/** Text that Helm must not read as a template action: `{{` and `}}` become literal strings. */
function escapeTemplateDelimiters(text: string): string {
  return text.replace(/\{\{|\}\}/g, (delimiter) => (delimiter === '{{' ? '{{`{{`}}' : '{{`}}`}}'));
}

/** Parses one generated CRD file and checks it is a single apiextensions.k8s.io/v1 CRD. */
export function parseCrd(text: string, file: string): Json {
  const documents = parseAllDocuments(text).filter((doc) => doc.contents !== null);
  if (documents.length !== 1) throw new Error(`${file}: expected exactly one YAML document, found ${documents.length}`);
  const document = documents[0]!;
  if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
  const crd: unknown = document.toJS();
  if (!isObject(crd)) throw new Error(`${file}: not a YAML map`);
  if (crd.apiVersion !== 'apiextensions.k8s.io/v1' || crd.kind !== 'CustomResourceDefinition') {
    throw new Error(`${file}: expected apiextensions.k8s.io/v1 CustomResourceDefinition, found ${String(crd.apiVersion)} ${String(crd.kind)}`);
  }
  if (!isObject(crd.metadata) || typeof crd.metadata.name !== 'string') throw new Error(`${file}: metadata.name is missing`);
  return crd;
}

/** The chart template for one generated CRD file. Pure: the same input gives the same text. */
export function renderChartCrd(text: string, file: string): string {
  const crd = parseCrd(text, file);
  const { name, annotations, labels, ...restOfMetadata } = crd.metadata as Json;
  const ownAnnotations = stringMap(annotations, `${file}: metadata.annotations`);
  delete ownAnnotations[KEEP_ANNOTATION];
  const ownLabels = Object.fromEntries(Object.entries(stringMap(labels, `${file}: metadata.labels`)).filter(([key]) => !CHART_LABEL_KEYS.has(key)));
  const hasAnnotations = Object.keys(ownAnnotations).length > 0;
  const metadata: Json = {
    name,
    ...(hasAnnotations ? { annotations: { [KEEP_MARK]: '', ...ownAnnotations } } : { [ANNOTATIONS_MARK]: '' }),
    labels: { [LABELS_MARK]: '', ...ownLabels },
    ...restOfMetadata,
  };
  const { apiVersion, kind, metadata: _metadata, ...rest } = crd;
  const body = escapeTemplateDelimiters(stringify({ apiVersion, kind, metadata, ...rest }, { lineWidth: 0, minContentWidth: 0 }));
  const lines = body.split('\n').flatMap((line) => {
    const trimmed = line.trim();
    if (trimmed === `${ANNOTATIONS_MARK}: ""`) {
      return ['  {{- if .Values.crds.keep }}', '  annotations:', `    ${KEEP_ANNOTATION}: keep`, '  {{- end }}'];
    }
    if (trimmed === `${KEEP_MARK}: ""`) return ['    {{- if .Values.crds.keep }}', `    ${KEEP_ANNOTATION}: keep`, '    {{- end }}'];
    if (trimmed === `${LABELS_MARK}: ""`) return ['    {{- include "spo.crdLabels" . | nindent 4 }}'];
    return [line];
  });
  return [
    `# Generated by charts/sync-crds.ts from crds/${file}: do not edit; run`,
    '# `node_modules/.bin/node charts/sync-crds.ts` after `npm run gen:crds`.',
    '{{- if .Values.crds.enabled }}',
    ...lines.filter((line, index) => !(index === lines.length - 1 && line === '')),
    '{{- end }}',
    '',
  ].join('\n');
}

export interface CrdSyncEntry {
  file: string;
  expected: string;
  actual: string | undefined;
}

/** What the chart's templates/crds/ should hold, next to what it holds. Throws when crds/ is not there. */
export function crdSyncPlan(): { entries: CrdSyncEntry[]; stale: string[] } {
  const missing = REQUIRED_CRDS.filter((file) => !existsSync(path.join(sourceDir, file)));
  if (missing.length > 0) {
    throw new Error(
      `generated CRDs missing: ${missing.map((file) => `crds/${file}`).join(', ')}. Generate them (npm run gen:crds), then run ` +
        "'node_modules/.bin/node charts/sync-crds.ts' to copy them into the chart",
    );
  }
  const files = readdirSync(sourceDir)
    .filter((file) => file.endsWith('.yaml'))
    .sort();
  const entries = files.map((file) => {
    const target = path.join(targetDir, file);
    return {
      file,
      expected: renderChartCrd(readFileSync(path.join(sourceDir, file), 'utf8'), file),
      actual: existsSync(target) ? readFileSync(target, 'utf8') : undefined,
    };
  });
  const stale = existsSync(targetDir) ? readdirSync(targetDir).filter((file) => !files.includes(file)) : [];
  return { entries, stale };
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const { entries, stale } = crdSyncPlan();
  const differing = entries.filter((entry) => entry.actual !== entry.expected);
  if (check) {
    for (const entry of differing) console.error(`templates/crds/${entry.file} differs from crds/${entry.file}`);
    for (const file of stale) console.error(`templates/crds/${file} has no source in crds/`);
    if (differing.length > 0 || stale.length > 0) {
      console.error("run 'node_modules/.bin/node charts/sync-crds.ts' to update the chart");
      return 1;
    }
    console.log(`chart CRDs match crds/ (${entries.length} files)`);
    return 0;
  }
  mkdirSync(targetDir, { recursive: true });
  for (const entry of differing) writeFileSync(path.join(targetDir, entry.file), entry.expected);
  for (const file of stale) rmSync(path.join(targetDir, file));
  console.log(`synced ${entries.length} CRDs into ${path.relative(repoRoot, targetDir)} (${differing.length} changed, ${stale.length} removed)`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
