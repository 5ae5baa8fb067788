// Shared by the chart's unit tests (chart*.test.ts): the shapes of the rendered objects they
// read, and helpers to pick a Deployment's container, a role's rules and a refused render.
import { expect } from 'chai';
import { chartDir, helm, kubeVersion, only, type K8sObject } from '../../charts/testing.ts';

export const READ_VERBS = ['get', 'list', 'watch'];
export const NAMESPACE = 'spo-system';

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown } }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
export interface PodSpec {
  securityContext?: Record<string, unknown>;
  serviceAccountName?: string;
  containers: Container[];
}

export function rulesOf(object: K8sObject): PolicyRule[] {
  return (object.rules as PolicyRule[] | undefined) ?? [];
}
export function deploymentOf(objects: K8sObject[]): { replicas: number; pod: PodSpec; container: Container } {
  const deployment = only(objects, 'Deployment') as K8sObject & { spec: { replicas: number; template: { spec: PodSpec } } };
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c) => c.name === 'operator');
  if (!container) throw new Error('no operator container');
  return { replicas: deployment.spec.replicas, pod, container };
}
export function envValue(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}
/** Rules of a role that grant `verb` on `group/resource`. */
export function grants(rules: PolicyRule[], group: string, resource: string, verb: string): PolicyRule[] {
  return rules.filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource) && r.verbs.includes(verb));
}
export function refused(values: unknown): string {
  const result = helm(['template', 'spo', chartDir, '--kube-version', kubeVersion()], values);
  expect(result.status, `helm accepted ${JSON.stringify(values)}`).to.not.equal(0);
  return result.stderr;
}
