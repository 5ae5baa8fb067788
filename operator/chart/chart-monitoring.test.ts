// The chart's optional monitoring objects (ServiceMonitor, PrometheusRule, Grafana dashboard),
// rendered with the pinned helm: a bare apiserver cannot check them (no Prometheus Operator CRDs).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ALL_FEATURES, only, render, type K8sObject } from '../../charts/testing.ts';
import { repoRoot } from '../../e2e/harness/paths.ts';
import { NAMESPACE, refused } from './test-support.ts';

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
