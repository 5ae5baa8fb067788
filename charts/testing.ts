// Renders and lints the chart with the pinned helm (e2e/harness/paths.ts), for the tests in
// operator/chart/ and the end-to-end suite. No cluster needed: `helm template` gets the
// pinned Kubernetes version through --kube-version.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { binaries, pinnedVersions } from '../e2e/harness/paths.ts';
import { chartDir } from './sync-crds.ts';

export { chartDir };

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** The pinned helm binary; throws with the way to build it when it is missing. */
export function helmBinary(): string {
  const helm = binaries().helm;
  if (!existsSync(helm)) throw new Error(`pinned helm missing at ${helm}: run 'bash e2e/cluster/build.sh'`);
  return helm;
}

/** The pinned Kubernetes version without the leading v (helm --kube-version). */
export function kubeVersion(): string {
  return pinnedVersions().K8S_VERSION.replace(/^v/, '');
}

/** Runs helm with a values file written from `values` (none when undefined). */
export function helm(args: string[], values?: unknown): HelmResult {
  let dir: string | undefined;
  const extra: string[] = [];
  if (values !== undefined) {
    dir = mkdtempSync(path.join(tmpdir(), 'spo-chart-'));
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, stringify(values));
    extra.push('-f', file);
  }
  try {
    const result = spawnSync(helmBinary(), [...args, ...extra], { encoding: 'utf8', timeout: 60_000 });
    if (result.error) throw result.error;
    return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Pass --kube-version (needed without a cluster: this helm's built-in default is v1.20). */
  offline?: boolean;
}

/** `helm template` output as text; throws with helm's message on failure. */
export function renderText(values?: unknown, options: RenderOptions = {}): string {
  const args = ['template', options.release ?? 'spo', chartDir, '--namespace', options.namespace ?? 'spo-system'];
  if (options.offline ?? true) args.push('--kube-version', kubeVersion());
  const result = helm(args, values);
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr.trim()}`);
  return result.stdout;
}

/** `helm template` output as objects. */
export function render(values?: unknown, options: RenderOptions = {}): K8sObject[] {
  return parseAllDocuments(renderText(values, options))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML is invalid: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((object): object is K8sObject => object !== null);
}

/** The one object of a kind (and name, if given); throws when there is not exactly one. */
export function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** Every optional feature on. */
export const ALL_FEATURES = {
  serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
  prometheusRule: { enabled: true, labels: { release: 'prometheus' }, alertLabels: { team: 'platform' }, runbookBaseURL: 'https://example.org/runbooks' },
  grafanaDashboard: { enabled: true },
  extraArgs: ['--concurrency=4'],
  podAnnotations: { 'example.org/team': 'platform' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'operators', effect: 'NoSchedule' }],
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }],
  networkPolicy: {
    workers: { extraFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] },
    operator: {
      metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }, { to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }],
    },
  },
};

/** Every optional feature on except those that need CRDs a bare apiserver lacks (Prometheus Operator's). */
export const ALL_FEATURES_BUT_PROMETHEUS_OPERATOR = {
  ...ALL_FEATURES,
  serviceMonitor: { enabled: false },
  prometheusRule: { enabled: false },
};
