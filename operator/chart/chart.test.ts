// The Helm chart, rendered with the pinned helm (no cluster): lint, what it installs by default,
// its security defaults and its CRDs. RBAC, NetworkPolicies, the values schema and the
// monitoring objects have their own files (chart-*.test.ts); shared helpers: test-support.ts.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ALL_FEATURES, chartDir, helm, kubeVersion, only, render, type K8sObject } from '../../charts/testing.ts';
import { NAMESPACE, deploymentOf, envValue, refused } from './test-support.ts';

describe('chart: lint', function () {
  this.timeout(60_000);

  it('passes helm lint and helm lint --strict with default values', () => {
    for (const strict of [[], ['--strict']]) {
      const result = helm(['lint', chartDir, '--kube-version', kubeVersion(), ...strict]);
      expect(result.status, result.stdout + result.stderr).to.equal(0);
      expect(result.stdout).to.include('0 chart(s) failed');
    }
  });

  it('passes helm lint --strict with every optional feature on', () => {
    const result = helm(['lint', chartDir, '--strict', '--kube-version', kubeVersion()], ALL_FEATURES);
    expect(result.status, result.stdout + result.stderr).to.equal(0);
  });

  it('declares apiVersion v2, appVersion 0.1.0 and kubeVersion >=1.30.0-0', () => {
    const chart = parse(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, string>;
    expect(chart).to.include({ apiVersion: 'v2', name: 'session-pool-operator', appVersion: '0.1.0', kubeVersion: '>=1.30.0-0' });
    const old = helm(['template', 'spo', chartDir, '--kube-version', '1.29.9']);
    expect(old.status).to.not.equal(0);
    expect(old.stderr).to.include('kubeVersion');
  });
});

describe('chart: default render', function () {
  this.timeout(30_000);
  let objects: K8sObject[];
  before(() => {
    objects = render();
  });

  it('installs the operator, its account, RBAC and pod-patch policy, metrics Service, disruption budget, NetworkPolicy and CRDs, and nothing optional', () => {
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).to.deep.equal(
      [
        'ClusterRole',
        'ClusterRoleBinding',
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'Deployment',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        'Service',
        'ServiceAccount',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
      ].sort(),
    );
    const clusterScoped = [
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ];
    for (const object of objects.filter((o) => !clusterScoped.includes(o.kind))) {
      expect(object.metadata.namespace, `${object.kind} namespace`).to.equal(NAMESPACE);
    }
  });

  it('runs two replicas of the built operator (dist/operator/cmd/operator.js) with leader election, log level and metrics port', () => {
    const { replicas, container, pod } = deploymentOf(objects);
    expect(replicas).to.equal(2);
    expect(container.image).to.equal('session-pool-operator:0.1.0');
    expect(container.command, "the image's entrypoint (tini -- node) runs it").to.equal(undefined);
    // The image's build of operator/cmd/operator.ts (Dockerfile, tsconfig.build.json).
    expect(container.args?.[0]).to.equal('dist/operator/cmd/operator.js');
    expect(container.args).to.include('--leader-elect');
    expect(envValue(container, 'SPO_LEADER_ELECTION_NAMESPACE')).to.equal(NAMESPACE);
    expect(envValue(container, 'SPO_LEADER_ELECTION_ID')).to.equal('spo-session-pool-operator');
    expect(envValue(container, 'SPO_LOG_LEVEL')).to.equal('info');
    expect(envValue(container, 'SPO_METRICS_PORT')).to.equal('9090');
    expect(container.ports).to.deep.equal([{ name: 'http-metrics', containerPort: 9090, protocol: 'TCP' }]);
    expect(container.livenessProbe?.httpGet).to.deep.equal({ path: '/healthz', port: 'http-metrics' });
    expect(container.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: 'http-metrics' });
    expect(container.startupProbe?.httpGet).to.deep.equal({ path: '/healthz', port: 'http-metrics' });
    expect(pod.serviceAccountName).to.equal(only(objects, 'ServiceAccount').metadata.name);
  });

  it('exposes the metrics port through a Service that selects the operator pods', () => {
    const service = only(objects, 'Service') as K8sObject & {
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    };
    const deployment = only(objects, 'Deployment') as K8sObject & { spec: { template: { metadata: { labels: Record<string, string> } } } };
    expect(service.spec.ports).to.deep.equal([{ name: 'http-metrics', port: 9090, targetPort: 'http-metrics', protocol: 'TCP' }]);
    expect(deployment.spec.template.metadata.labels).to.include(service.spec.selector);
  });

  it('has a disruption budget that never blocks a node drain', () => {
    const pdb = only(objects, 'PodDisruptionBudget') as K8sObject & { spec: Record<string, unknown> };
    expect(pdb.spec.maxUnavailable).to.equal(1);
    expect(pdb.spec.unhealthyPodEvictionPolicy).to.equal('AlwaysAllow');
    expect(pdb.spec).to.not.have.property('minAvailable');
  });
});

describe('chart: security defaults', function () {
  this.timeout(30_000);

  it('runs non-root (uid 10001) with a read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    const { pod, container } = deploymentOf(render());
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 10001 });
    expect(pod.securityContext?.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
    expect(container.securityContext).to.deep.include({
      runAsNonRoot: true,
      runAsUser: 10001,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
    });
    expect(container.securityContext?.capabilities).to.deep.equal({ drop: ['ALL'] });
    expect(container.securityContext?.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
  });

  it('sets CPU and memory requests and limits', () => {
    const { container } = deploymentOf(render());
    expect(container.resources?.requests).to.have.keys('cpu', 'memory');
    expect(container.resources?.limits).to.have.keys('cpu', 'memory');
  });

  it('has no Redis settings of its own: each SessionPool names its store and Secrets, and no credential is a literal', () => {
    const { container } = deploymentOf(render(ALL_FEATURES));
    expect((container.env ?? []).map((e) => e.name).filter((name) => name.startsWith('SPO_REDIS'))).to.deep.equal([]);
    for (const env of container.env ?? []) {
      if (/PASSWORD|TOKEN|SECRET|USERNAME/.test(env.name)) expect(env.value, `${env.name} has a literal value`).to.equal(undefined);
    }
    expect(refused({ redis: { endpoints: ['redis-0:6379'] } })).to.match(/redis/);
  });
});

describe('chart: CRDs', function () {
  this.timeout(30_000);
  const crds = (values?: unknown) => render(values).filter((o) => o.kind === 'CustomResourceDefinition');

  it('installs both CRDs with the keep annotation by default', () => {
    const found = crds();
    expect(found.map((c) => c.metadata.name).sort()).to.deep.equal(['sessionmigrations.dspex.io', 'sessionpools.dspex.io']);
    for (const crd of found) expect(crd.metadata.annotations).to.deep.equal({ 'helm.sh/resource-policy': 'keep' });
  });

  it('drops the keep annotation with crds.keep=false, and the CRDs with crds.enabled=false', () => {
    for (const crd of crds({ crds: { keep: false } })) expect(crd.metadata.annotations?.['helm.sh/resource-policy']).to.equal(undefined);
    expect(crds({ crds: { enabled: false } })).to.deep.equal([]);
  });
});
