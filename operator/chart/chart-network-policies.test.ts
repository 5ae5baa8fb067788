// The chart's NetworkPolicies, rendered with the pinned helm (no cluster): the operator pods'
// own policy, the flags that make the operator generate the workers' policies, and their RBAC.
import { expect } from 'chai';
import { only, render, type K8sObject } from '../../charts/testing.ts';
import { NAMESPACE, deploymentOf, envValue, refused, rulesOf } from './test-support.ts';

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
