// The rendered chart against the real apiserver: a server-side dry run (admission, schema
// and strict field validation, RBAC escalation checks) of every object, with every optional
// feature on except the ServiceMonitor and PrometheusRule, whose CRDs (Prometheus
// Operator's) a bare apiserver lacks; chart-monitoring.test.ts checks their structure instead.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { stringify } from 'yaml';
import { ALL_FEATURES_BUT_PROMETHEUS_OPERATOR, render, renderText } from '../../charts/testing.ts';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';

function kubectl(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const { kubeconfigPath } = kubeTestEnv();
  const result = spawnSync('kubectl', ['--kubeconfig', kubeconfigPath, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

describe('chart: server-side dry run against the apiserver', function () {
  this.timeout(120_000);
  const namespace = `spo-chart-int-${process.pid}`;
  before(() => {
    const created = kubectl(['create', 'namespace', namespace]);
    expect(created.status, created.stderr).to.equal(0);
  });
  after(() => {
    kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  for (const [label, values] of [
    ['default values', undefined],
    ['every optional feature but the Prometheus Operator objects', ALL_FEATURES_BUT_PROMETHEUS_OPERATOR],
  ] as const) {
    it(`accepts every object rendered with ${label}`, () => {
      const objects = render(values, { namespace, release: 'dry' });
      expect(objects.map((o) => o.kind)).to.not.include.members(['ServiceMonitor', 'PrometheusRule']);
      const result = kubectl(
        ['apply', '--dry-run=server', '--validate=strict', '-f', '-'],
        renderText(values, { namespace, release: 'dry' }),
      );
      expect(result.status, result.stderr).to.equal(0);
      const accepted = result.stdout.split('\n').filter((line) => line.includes('(server dry run)'));
      expect(accepted, result.stdout).to.have.length(objects.length);
    });
  }

  it('refuses an object the chart does not produce (the dry run really validates)', () => {
    const bad = renderText(undefined, { namespace, release: 'dry' }).replace(
      'unhealthyPodEvictionPolicy: AlwaysAllow',
      'unhealthyPodEvictionPolicy: Sometimes',
    );
    const result = kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], bad);
    expect(result.status).to.not.equal(0);
    expect(result.stderr).to.match(/unhealthyPodEvictionPolicy/);
  });
});

describe("chart: the operator account's Secret access, applied to the apiserver (RBAC authorizer)", function () {
  this.timeout(120_000);
  const run = process.pid.toString(36);
  const release = `rbac-${run}`;
  const home = `spo-rbac-${run}`;
  const watched = `spo-rbac-watched-${run}`;
  const other = `spo-rbac-other-${run}`;
  const account = `system:serviceaccount:${home}:${release}-session-pool-operator`;
  const RBAC_KINDS = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
  /** Applies (for real) only the chart's account and RBAC objects, so the authorizer uses them. */
  const applyRbac = (values: unknown) => {
    const objects = render(values, { namespace: home, release }).filter((o) => RBAC_KINDS.includes(o.kind));
    const applied = kubectl(['apply', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
    expect(applied.status, applied.stderr).to.equal(0);
  };
  /** `kubectl auth can-i` as the operator's ServiceAccount: yes (0) or no (1). */
  const can = (verb: string, namespace: string) => {
    const answer = kubectl(['auth', 'can-i', verb, 'secrets', '-n', namespace, '--as', account]);
    expect([0, 1], answer.stderr).to.include(answer.status);
    return answer.status === 0;
  };
  before(() => {
    for (const ns of [home, watched, other]) {
      const created = kubectl(['create', 'namespace', ns]);
      expect(created.status, created.stderr).to.equal(0);
    }
  });
  after(() => {
    kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${release}`, '--wait=false']);
    for (const ns of [home, watched, other]) kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  it('every namespace watched (default): get and create Secrets by name anywhere, never list, watch, change or delete', () => {
    applyRbac(undefined);
    for (const ns of [watched, other]) {
      expect(can('get', ns), `get in ${ns}`).to.equal(true);
      expect(can('create', ns), `create in ${ns}`).to.equal(true);
      for (const verb of ['list', 'watch', 'update', 'patch', 'delete']) expect(can(verb, ns), `${verb} in ${ns}`).to.equal(false);
    }
  });

  it('watchNamespace: Secrets only in that namespace (a Role), none elsewhere; the operator watches only it', () => {
    const values = { watchNamespace: watched };
    applyRbac(values);
    expect(can('get', watched)).to.equal(true);
    expect(can('create', watched)).to.equal(true);
    for (const verb of ['list', 'watch', 'update', 'delete']) expect(can(verb, watched), `${verb} in ${watched}`).to.equal(false);
    // The ClusterRole applied by the test before was replaced: no Secret access outside the watched namespace.
    for (const ns of [other, home]) for (const verb of ['get', 'create', 'list']) expect(can(verb, ns), `${verb} in ${ns}`).to.equal(false);
    const deployment = render(values, { namespace: home, release }).find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } };
    };
    const env = deployment.spec.template.spec.containers.find((c) => c.name === 'operator')?.env ?? [];
    expect(env.find((e) => e.name === 'SPO_NAMESPACE')?.value).to.equal(watched);
  });
});
