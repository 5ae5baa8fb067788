// The chart's least-privilege RBAC, rendered with the pinned helm (no cluster): no wildcards,
// reads apart from writes, explicit subresources, Leases pinned by name, namespace scoping.
import { expect } from 'chai';
import { only, render, type K8sObject } from '../../charts/testing.ts';
import { NAMESPACE, READ_VERBS, deploymentOf, envValue, grants, refused, rulesOf, type PolicyRule } from './test-support.ts';

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
