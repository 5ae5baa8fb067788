// The Helm chart, rendered with the pinned helm (no cluster): lint, what it installs, its
// least-privilege RBAC, its security defaults, its values schema, and the monitoring
// objects (ServiceMonitor, PrometheusRule, dashboard) that a bare apiserver cannot check.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ALL_FEATURES, chartDir, helm, kubeVersion, only, render, type K8sObject } from '../../charts/testing.ts';
import { repoRoot } from '../../e2e/harness/paths.ts';

const READ_VERBS = ['get', 'list', 'watch'];
const NAMESPACE = 'spo-system';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface Container {
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
interface PodSpec {
  securityContext?: Record<string, unknown>;
  serviceAccountName?: string;
  containers: Container[];
}

function rulesOf(object: K8sObject): PolicyRule[] {
  return (object.rules as PolicyRule[] | undefined) ?? [];
}
function deploymentOf(objects: K8sObject[]): { replicas: number; pod: PodSpec; container: Container } {
  const deployment = only(objects, 'Deployment') as K8sObject & { spec: { replicas: number; template: { spec: PodSpec } } };
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c) => c.name === 'operator');
  if (!container) throw new Error('no operator container');
  return { replicas: deployment.spec.replicas, pod, container };
}
function envValue(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}
/** Rules of a role that grant `verb` on `group/resource`. */
function grants(rules: PolicyRule[], group: string, resource: string, verb: string): PolicyRule[] {
  return rules.filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource) && r.verbs.includes(verb));
}
function refused(values: unknown): string {
  const result = helm(['template', 'spo', chartDir, '--kube-version', kubeVersion()], values);
  expect(result.status, `helm accepted ${JSON.stringify(values)}`).to.not.equal(0);
  return result.stderr;
}

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

  it('runs two replicas of node operator/cmd/operator.ts with leader election, log level and metrics port', () => {
    const { replicas, container, pod } = deploymentOf(objects);
    expect(replicas).to.equal(2);
    expect(container.image).to.equal('session-pool-operator:0.1.0');
    expect(container.command, "the image's entrypoint (tini -- node) runs it").to.equal(undefined);
    expect(container.args?.[0]).to.equal('operator/cmd/operator.ts');
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

describe('chart: NetworkPolicies', function () {
  this.timeout(30_000);
  interface Peer {
    namespaceSelector?: { matchLabels?: Record<string, string> };
    podSelector?: { matchLabels?: Record<string, string> };
    ipBlock?: { cidr: string };
  }
  type Policy = K8sObject & {
    spec: {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: { ports: { protocol: string; port: number }[]; from?: Peer[] }[];
      egress?: unknown[];
    };
  };
  const monitoring: Peer = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } };
  const networkRules = (objects: K8sObject[]) =>
    rulesOf(only(objects, 'ClusterRole')).filter((r) => r.apiGroups?.includes('networking.k8s.io'));

  it("by default: the operator pods take ingress on the metrics port only, and the operator generates the workers' policies", () => {
    const objects = render();
    const policy = only(objects, 'NetworkPolicy') as Policy;
    const deployment = only(objects, 'Deployment') as K8sObject & {
      spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } };
    };
    expect(policy.metadata.namespace).to.equal(NAMESPACE);
    expect(policy.spec.podSelector.matchLabels).to.deep.equal(deployment.spec.selector.matchLabels);
    expect(policy.spec.policyTypes).to.deep.equal(['Ingress']);
    expect(policy.spec.ingress).to.deep.equal([{ ports: [{ protocol: 'TCP', port: 9090 }] }]);
    const { container } = deploymentOf(objects);
    expect(envValue(container, 'SPO_WORKER_NETWORK_POLICY')).to.equal('true');
    // The operator admits its own pods to the workers: the labels must select them.
    const labels: Record<string, string> = Object.fromEntries(
      (envValue(container, 'SPO_OPERATOR_POD_LABELS') ?? '')
        .split(',')
        .map((p): [string, string] => [p.split('=')[0] ?? '', p.split('=')[1] ?? '']),
    );
    expect(labels).to.deep.equal(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).to.include(labels);
    expect(envValue(container, 'SPO_WORKER_NETWORK_POLICY_EXTRA_PEERS')).to.equal(undefined);
    expect(container.env?.find((e) => e.name === 'SPO_POD_NAMESPACE')?.valueFrom?.fieldRef).to.deep.equal({
      fieldPath: 'metadata.namespace',
    });
    expect(networkRules(objects)).to.deep.equal([
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['create', 'patch'] },
    ]);
  });

  it('widens with values: extra worker sources, metrics sources, and operator egress rules', () => {
    const egress = [{ ports: [{ protocol: 'UDP', port: 53 }] }, { to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }];
    const objects = render({ networkPolicy: { workers: { extraFrom: [monitoring] }, operator: { metricsFrom: [monitoring], egress } } });
    const policy = only(objects, 'NetworkPolicy') as Policy;
    expect(policy.spec.ingress[0]?.from).to.deep.equal([monitoring]);
    expect(policy.spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
    expect(policy.spec.egress).to.deep.equal(egress);
    const { container } = deploymentOf(objects);
    expect(JSON.parse(envValue(container, 'SPO_WORKER_NETWORK_POLICY_EXTRA_PEERS') ?? 'null')).to.deep.equal([monitoring]);
  });

  it('turns each policy off, with its RBAC and flags', () => {
    const objects = render({ networkPolicy: { workers: { enabled: false }, operator: { enabled: false } } });
    expect(objects.filter((o) => o.kind === 'NetworkPolicy')).to.deep.equal([]);
    const { container } = deploymentOf(objects);
    expect(envValue(container, 'SPO_WORKER_NETWORK_POLICY')).to.equal(undefined);
    expect(envValue(container, 'SPO_OPERATOR_POD_LABELS')).to.equal(undefined);
    expect(networkRules(objects)).to.deep.equal([]);
  });

  it('refuses peers and rules that are not NetworkPolicy shapes', () => {
    expect(refused({ networkPolicy: { workers: { extraFrom: [{ namespace: 'x' }] } } })).to.match(/extraFrom/);
    expect(refused({ networkPolicy: { workers: { extraFrom: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] } } })).to.match(
      /extraFrom/,
    );
    expect(refused({ networkPolicy: { operator: { egress: [{ to: [{}] }] } } })).to.match(/egress/);
    expect(refused({ networkPolicy: { operator: { allowAll: true } } })).to.match(/additional properties 'allowAll' not allowed/i);
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

describe('chart: RBAC', function () {
  this.timeout(30_000);
  let objects: K8sObject[];
  let cluster: PolicyRule[];
  let lease: PolicyRule[];
  before(() => {
    objects = render();
    cluster = rulesOf(only(objects, 'ClusterRole'));
    lease = rulesOf(only(objects, 'Role'));
  });

  it('has no wildcard verb, resource or API group', () => {
    for (const rule of [...cluster, ...lease]) {
      expect(rule.verbs).to.not.include('*');
      expect(rule.resources ?? []).to.not.include('*');
      expect(rule.apiGroups ?? []).to.not.include('*');
      expect(rule.resources ?? []).to.not.satisfy((resources: string[]) => resources.some((r) => r.endsWith('/*')));
    }
  });

  it('keeps read verbs apart from write verbs', () => {
    for (const rule of [...cluster, ...lease]) {
      const reads = rule.verbs.filter((v) => READ_VERBS.includes(v));
      expect(reads.length === 0 || reads.length === rule.verbs.length, JSON.stringify(rule)).to.equal(true);
    }
  });

  it('names the status and finalizers subresources explicitly', () => {
    for (const resource of ['sessionpools/status', 'sessionmigrations/status']) {
      expect(grants(cluster, 'dspex.io', resource, 'patch'), resource).to.have.length(1);
      expect(grants(cluster, 'dspex.io', resource, 'update'), resource).to.have.length(1);
    }
    for (const resource of ['sessionpools/finalizers', 'sessionmigrations/finalizers']) {
      expect(grants(cluster, 'dspex.io', resource, 'update'), resource).to.have.length(1);
    }
    for (const resource of ['sessionpools', 'sessionmigrations']) {
      for (const verb of READ_VERBS) expect(grants(cluster, 'dspex.io', resource, verb), `${verb} ${resource}`).to.have.length(1);
    }
  });

  it('writes the children of a pool and patches (never deletes) worker pods', () => {
    for (const [group, resource] of [
      ['apps', 'deployments'],
      ['', 'services'],
      ['policy', 'poddisruptionbudgets'],
    ] as const) {
      for (const verb of [...READ_VERBS, 'create', 'patch', 'update', 'delete']) {
        expect(grants(cluster, group, resource, verb), `${verb} ${resource}`).to.have.length(1);
      }
    }
    for (const verb of [...READ_VERBS, 'patch']) expect(grants(cluster, '', 'pods', verb), `${verb} pods`).to.have.length(1);
    for (const verb of ['create', 'update', 'delete', 'deletecollection'])
      expect(grants(cluster, '', 'pods', verb), `${verb} pods`).to.have.length(0);
    expect(grants(cluster, '', 'pods/eviction', 'create')).to.have.length(1);
  });

  it('reads nodes, gets and creates Secrets (never lists, watches, changes or deletes them), and only creates and patches events', () => {
    const verbsOn = (group: string, resource: string) =>
      cluster.filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource)).flatMap((r) => r.verbs);
    expect(verbsOn('', 'nodes').sort()).to.deep.equal([...READ_VERBS].sort());
    // get: credentials a pool names and its admin token; create: the admin token Secret, once.
    expect(verbsOn('', 'secrets').sort()).to.deep.equal(['create', 'get']);
    expect(verbsOn('', 'events').sort()).to.deep.equal(['create', 'patch']);
    expect(verbsOn('events.k8s.io', 'events').sort()).to.deep.equal(['create', 'patch']);
  });

  it('grants leases only in the lease namespace, pinned by resourceNames except create', () => {
    const role = only(objects, 'Role');
    const { container } = deploymentOf(objects);
    expect(role.metadata.namespace).to.equal(NAMESPACE);
    expect(cluster.some((r) => r.apiGroups?.includes('coordination.k8s.io'))).to.equal(false);
    const create = lease.filter((r) => r.verbs.includes('create'));
    expect(create).to.deep.equal([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] }]);
    const pinned = lease.filter((r) => !r.verbs.includes('create'));
    expect(pinned).to.have.length.greaterThan(0);
    for (const rule of pinned) expect(rule.resourceNames).to.deep.equal([envValue(container, 'SPO_LEADER_ELECTION_ID')]);
    expect(pinned.flatMap((r) => r.verbs).sort()).to.deep.equal(['get', 'patch', 'update']);
  });

  it('binds the roles to the operator ServiceAccount', () => {
    const account = only(objects, 'ServiceAccount').metadata.name;
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const binding = only(objects, kind) as K8sObject & {
        subjects: { kind: string; name: string; namespace: string }[];
        roleRef: { name: string };
      };
      expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: account, namespace: NAMESPACE }]);
      expect(binding.roleRef.name).to.equal(only(objects, kind === 'RoleBinding' ? 'Role' : 'ClusterRole').metadata.name);
    }
  });

  it('follows leaderElection.namespace and leaseName', () => {
    const moved = render({ leaderElection: { namespace: 'kube-leases', leaseName: 'spo-leader' } });
    expect(only(moved, 'Role').metadata.namespace).to.equal('kube-leases');
    expect(only(moved, 'RoleBinding').metadata.namespace).to.equal('kube-leases');
    expect(rulesOf(only(moved, 'Role')).find((r) => r.resourceNames)?.resourceNames).to.deep.equal(['spo-leader']);
    expect(envValue(deploymentOf(moved).container, 'SPO_LEADER_ELECTION_NAMESPACE')).to.equal('kube-leases');
  });

  it('drops the Lease role and flag with one replica and no leader election, and refuses two replicas without it', () => {
    const single = render({ replicaCount: 1, leaderElection: { enabled: false } });
    expect(single.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding')).to.have.length(0);
    expect(deploymentOf(single).container.args ?? []).to.not.include('--leader-elect');
    expect(refused({ replicaCount: 2, leaderElection: { enabled: false } })).to.include('leaderElection.enabled');
  });

  it('spreads the replicas over nodes by default, and selects the operator pods in topology spread constraints', () => {
    const spec = (values?: unknown) =>
      (
        only(render(values), 'Deployment') as K8sObject & {
          spec: { template: { spec: { affinity?: Record<string, unknown>; topologySpreadConstraints?: { labelSelector: unknown }[] } } };
        }
      ).spec.template.spec;
    expect(JSON.stringify(spec().affinity)).to.include('kubernetes.io/hostname');
    const constraints = spec({
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'ScheduleAnyway' }],
    }).topologySpreadConstraints;
    expect(constraints?.[0]?.labelSelector).to.deep.equal({
      matchLabels: {
        'app.kubernetes.io/name': 'session-pool-operator',
        'app.kubernetes.io/instance': 'spo',
        'app.kubernetes.io/component': 'operator',
      },
    });
  });

  it('watchNamespace: Secret rules leave the ClusterRole for a Role bound in that namespace, and the operator watches only it', () => {
    const scoped = render({ watchNamespace: 'team-a' });
    const clusterRules = rulesOf(only(scoped, 'ClusterRole'));
    expect(clusterRules.filter((r) => r.resources?.includes('secrets'))).to.deep.equal([]);
    const role = only(scoped, 'Role', 'spo-session-pool-operator:secrets');
    expect(role.metadata.namespace).to.equal('team-a');
    expect(rulesOf(role)).to.deep.equal([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    const binding = only(scoped, 'RoleBinding', 'spo-session-pool-operator:secrets') as K8sObject & {
      subjects: { kind: string; name: string; namespace: string }[];
      roleRef: { kind: string; name: string };
    };
    expect(binding.metadata.namespace).to.equal('team-a');
    expect(binding.roleRef).to.include({ kind: 'Role', name: 'spo-session-pool-operator:secrets' });
    expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'spo-session-pool-operator', namespace: NAMESPACE }]);
    // Everything else is as without it; and the operator is told the namespace.
    expect(clusterRules).to.deep.equal(cluster.filter((r) => !r.resources?.includes('secrets')));
    expect(envValue(deploymentOf(scoped).container, 'SPO_NAMESPACE')).to.equal('team-a');
    expect(envValue(deploymentOf(objects).container, 'SPO_NAMESPACE')).to.equal(undefined);
    expect(refused({ watchNamespace: 'Not_A_Namespace' })).to.include('watchNamespace');
  });

  it('creates no RBAC with rbac.create=false', () => {
    const kinds = render({ rbac: { create: false } }).map((o) => o.kind);
    expect(kinds).to.not.include.members(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
  });
});

describe('chart: values schema', function () {
  this.timeout(30_000);

  it('refuses unknown keys at every level', () => {
    expect(refused({ replicas: 2 })).to.match(/additional properties 'replicas' not allowed/i);
    expect(refused({ image: { name: 'x' } })).to.match(/additional properties 'name' not allowed/i);
    expect(refused({ prometheusRule: { rules: { storeLatency: { threshold: 1 } } } })).to.match(
      /additional properties 'threshold' not allowed/i,
    );
    expect(refused({ securityContext: { runAsRoot: true } })).to.match(/additional properties 'runAsRoot' not allowed/i);
  });

  it('refuses wrong types and out-of-range values', () => {
    expect(refused({ replicaCount: 'two' })).to.match(/replicaCount/);
    expect(refused({ leaderElection: { enabled: 'sure' } })).to.match(/leaderElection/);
    expect(refused({ metrics: { port: 80 } })).to.match(/metrics/);
    expect(refused({ logLevel: 'verbose' })).to.match(/logLevel/);
    expect(refused({ podDisruptionBudget: { maxUnavailable: 0 } })).to.match(/maxUnavailable/);
    expect(refused({ prometheusRule: { rules: { poolNearMaxWorkers: { ratio: 1.5 } } } })).to.match(/ratio/);
    expect(refused({ serviceMonitor: { interval: 'often' } })).to.match(/interval/);
    expect(refused({ extraArgs: ['leader-elect'] })).to.match(/extraArgs/);
  });

  it('closes every object of the schema (additionalProperties false or typed), apart from Kubernetes pass-through', () => {
    const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
    const open: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${at}[${i}]`));
      if (typeof node !== 'object' || node === null) return;
      const record = node as Record<string, unknown>;
      if (record.type === 'object') {
        if (record.properties !== undefined && record.additionalProperties !== false) open.push(`${at} has properties but is not closed`);
        if (record.properties === undefined && record.additionalProperties === undefined)
          open.push(`${at} is an object with no rule for its keys`);
        if (record.additionalProperties === true) open.push(at);
      }
      for (const [key, value] of Object.entries(record)) walk(value, `${at}/${key}`);
    };
    walk(schema, '#');
    // Only Helm's `global` and the deep terms of affinity (validated by the apiserver) stay open.
    expect(open.filter((p) => !/^#\/properties\/(global|affinity\/properties\/\w+\/properties\/\w+)/.test(p))).to.deep.equal([]);
  });

  it('matches values.yaml: every default validates and every schema property has a default', () => {
    const values = parse(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
    expect(Object.keys(values).sort()).to.deep.equal(
      Object.keys(schema.properties)
        .filter((k) => k !== 'global')
        .sort(),
    );
  });
});

describe('chart: documentation', function () {
  /** Paths of values.yaml keys that carry a `# --` comment, the documented ones. */
  function documentedPaths(): string[] {
    const lines = readFileSync(path.join(chartDir, 'values.yaml'), 'utf8').split('\n');
    const stack: { indent: number; key: string }[] = [];
    const paths: string[] = [];
    let commented = false;
    for (const line of lines) {
      const comment = /^\s*# --/.test(line);
      if (/^\s*#/.test(line) || line.trim() === '') {
        if (comment) commented = true;
        else if (line.trim() === '') commented = false;
        continue;
      }
      const match = /^(\s*)([A-Za-z][\w.-]*):/.exec(line);
      if (!match) continue;
      const indent = match[1]!.length;
      while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
      stack.push({ indent, key: match[2]! });
      if (commented) paths.push(stack.map((s) => s.key).join('.'));
      commented = false;
    }
    return paths;
  }

  it('documents every leaf of values.yaml with a `# --` comment', () => {
    const values = parse(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const documented = new Set(documentedPaths());
    const undocumented: string[] = [];
    const walk = (node: unknown, at: string[]): void => {
      const key = at.join('.');
      if (at.length > 0 && documented.has(key)) return;
      if (typeof node === 'object' && node !== null && !Array.isArray(node) && Object.keys(node).length > 0) {
        for (const [k, v] of Object.entries(node)) walk(v, [...at, k]);
      } else undocumented.push(key);
    };
    walk(values, []);
    expect(undocumented).to.deep.equal([]);
  });

  it('describes every documented value in docs/chart.md', () => {
    const doc = readFileSync(path.join(repoRoot, 'docs/chart.md'), 'utf8');
    expect(documentedPaths().filter((p) => !doc.includes(`\`${p}\``))).to.deep.equal([]);
  });
});

describe('chart: optional monitoring objects', function () {
  this.timeout(30_000);
  let objects: K8sObject[];
  before(() => {
    objects = render(ALL_FEATURES);
  });

  it('renders a ServiceMonitor that scrapes the metrics Service port', () => {
    const monitor = only(objects, 'ServiceMonitor') as K8sObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchNames: string[] };
        endpoints: { port: string; path: string; interval: string }[];
      };
    };
    const service = only(objects, 'Service') as K8sObject & { spec: { ports: { name: string }[] } };
    expect(monitor.apiVersion).to.equal('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels).to.include({ release: 'prometheus' });
    expect(service.metadata.labels).to.include(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector.matchNames).to.deep.equal([NAMESPACE]);
    expect(monitor.spec.endpoints).to.have.length(1);
    expect(monitor.spec.endpoints[0]).to.include({ port: service.spec.ports[0]!.name, path: '/metrics', interval: '30s' });
    expect(refused({ serviceMonitor: { enabled: true }, metrics: { service: { enabled: false } } })).to.include('metrics.service.enabled');
  });

  interface AlertRule {
    alert: string;
    expr: string;
    for?: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  }
  const alertsOf = (list: K8sObject[]): AlertRule[] =>
    (only(list, 'PrometheusRule') as K8sObject & { spec: { groups: { name: string; rules: AlertRule[] }[] } }).spec.groups.flatMap(
      (g) => g.rules,
    );

  it('renders a PrometheusRule with the alerts that matter, each with severity, summary, description and runbook', () => {
    const alerts = alertsOf(objects);
    expect(alerts.map((a) => a.alert).sort()).to.deep.equal(
      [
        'SessionEvacuationFailed',
        'SessionEvacuationStuck',
        'SessionPoolNearMaxWorkers',
        'SessionPoolNotReady',
        'SessionPoolOperatorDown',
        'SessionPoolOperatorReconcileErrors',
        'SessionStoreDegraded',
        'SessionStoreLatencyHigh',
        'SessionStoreUnreachable',
        'SessionsCorrupted',
      ].sort(),
    );
    for (const alert of alerts) {
      expect(alert.labels.severity, alert.alert).to.be.oneOf(['warning', 'critical']);
      expect(alert.labels.team, alert.alert).to.equal('platform');
      expect(alert.annotations.summary, alert.alert).to.be.a('string').and.not.empty;
      expect(alert.annotations.description, alert.alert).to.be.a('string').and.not.empty;
      expect(alert.annotations.runbook_url, alert.alert).to.equal(`https://example.org/runbooks#${alert.alert.toLowerCase()}`);
      expect(alert.expr.split('(').length, `${alert.alert} parentheses`).to.equal(alert.expr.split(')').length);
    }
  });

  it('uses only the metric names of the contract in docs/chart.md, in alerts and dashboard', () => {
    const doc = readFileSync(path.join(repoRoot, 'docs/chart.md'), 'utf8');
    const contract = new Set([...doc.matchAll(/^\| `(spo_[a-z_]+)`/gm)].map((m) => m[1]!));
    for (const name of [
      'spo_migration_failures_total',
      'spo_migration_phase',
      'spo_store_degraded',
      'spo_store_operation_duration_seconds',
      'spo_pool_replicas',
      'spo_pool_max_replicas',
      'spo_store_corruptions_total',
      'spo_operator_reconcile_total',
      'spo_pool_condition',
    ]) {
      expect(contract, name).to.include(name);
    }
    const dashboard = only(objects, 'ConfigMap') as K8sObject & { data: Record<string, string> };
    const used = [...alertsOf(objects).map((a) => a.expr), ...Object.values(dashboard.data)].join('\n');
    const names = new Set([...used.matchAll(/\b(spo_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, '')));
    expect([...names].filter((n) => !contract.has(n))).to.deep.equal([]);
  });

  it('carries the thresholds and durations from values into the alerts, and leaves disabled alerts out', () => {
    const alerts = alertsOf(
      render({
        prometheusRule: {
          enabled: true,
          rules: {
            storeLatency: { p99Seconds: 0.2, for: '3m' },
            poolNearMaxWorkers: { ratio: 0.75 },
            evacuationStuck: { for: '45m' },
            sessionsCorrupted: { enabled: false },
          },
        },
      }),
    );
    const byName = new Map(alerts.map((a) => [a.alert, a]));
    expect(byName.get('SessionStoreLatencyHigh')?.expr).to.match(
      /histogram_quantile\(0\.99,.*spo_store_operation_duration_seconds_bucket.*> 0\.2$/,
    );
    expect(byName.get('SessionStoreLatencyHigh')?.for).to.equal('3m');
    expect(byName.get('SessionPoolNearMaxWorkers')?.expr).to.match(/>= 0\.75$/);
    expect(byName.get('SessionEvacuationStuck')?.for).to.equal('45m');
    expect(byName.get('SessionEvacuationStuck')?.expr).to.include('phase=~"Pending|Planning|Running"');
    expect(byName.has('SessionsCorrupted')).to.equal(false);
    expect(alerts.every((a) => !('runbook_url' in a.annotations))).to.equal(true);
  });

  it('renders a Grafana dashboard ConfigMap with valid JSON for the sidecar', () => {
    const config = only(objects, 'ConfigMap') as K8sObject & { data: Record<string, string> };
    expect(config.metadata.labels).to.include({ grafana_dashboard: '1' });
    const dashboard = JSON.parse(config.data['session-pool-operator.json'] ?? '') as {
      uid: string;
      panels: { targets: { expr: string }[] }[];
    };
    expect(dashboard.uid).to.equal('session-pool-operator');
    expect(dashboard.panels.length).to.be.greaterThan(4);
    for (const panel of dashboard.panels) expect(panel.targets.length).to.be.greaterThan(0);
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
