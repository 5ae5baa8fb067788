// The rendered chart against the real apiserver: a server-side dry run (admission, schema
// and strict field validation, RBAC escalation checks) of every object, with every optional
// feature on except the ServiceMonitor and PrometheusRule, whose CRDs (Prometheus
// Operator's) a bare apiserver lacks; chart.test.ts checks their structure instead.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
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
