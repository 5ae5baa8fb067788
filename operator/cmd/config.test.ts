import { expect } from 'chai';
import { DEFAULT_LEASE_DURATION_MS, DEFAULT_RENEW_DEADLINE_MS, DEFAULT_RETRY_PERIOD_MS } from '../kube/leader-election-timing.ts';
import { ConfigError, HelpRequested, USAGE, parseOperatorConfig } from './config.ts';

function parse(argv: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return parseOperatorConfig({ argv, env, hostname: 'host', pid: 7 });
}

function problems(argv: string[] = [], env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parse(argv, env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  expect.fail('expected a ConfigError');
}

describe('cmd/config (operator)', () => {
  it('has sensible defaults', () => {
    const c = parse();
    expect(c).to.deep.include({
      leaderElect: false,
      metricsPort: 9090,
      namespace: '',
      leaderElectionNamespace: 'default',
      leaderElectionId: 'session-pool-operator',
      identity: 'host-7',
      logLevel: 'info',
      concurrency: 4,
      controllers: ['pool', 'migration', 'drain'],
      leanKubeClient: true,
    });
    expect(c.leaseDurationMs).to.be.above(c.renewDeadlineMs);
  });

  it('loads the Kubernetes client whole only when asked (--no-lean-kube-client, SPO_LEAN_KUBE_CLIENT=false)', () => {
    expect(parse(['--no-lean-kube-client']).leanKubeClient).to.equal(false);
    expect(parse([], { SPO_LEAN_KUBE_CLIENT: 'false' }).leanKubeClient).to.equal(false);
    expect(parse(['--lean-kube-client'], { SPO_LEAN_KUBE_CLIENT: 'false' }).leanKubeClient).to.equal(true);
    expect(problems([], { SPO_LEAN_KUBE_CLIENT: 'maybe' }).join()).to.match(/SPO_LEAN_KUBE_CLIENT='maybe' is not a boolean/);
  });

  it('reads flags in both forms, and booleans', () => {
    const c = parse(['--leader-elect', '--metrics-port', '0', '--namespace=team-a', '--log-level=debug', '--controllers=pool']);
    expect(c).to.deep.include({ leaderElect: true, metricsPort: 0, namespace: 'team-a', logLevel: 'debug', controllers: ['pool'] });
    expect(parse(['--leader-elect=false']).leaderElect).to.equal(false);
    expect(parse(['--no-leader-elect'], { SPO_LEADER_ELECT: 'true' }).leaderElect).to.equal(false);
  });

  it('reads the environment; flags win', () => {
    const env = {
      SPO_METRICS_PORT: '9100',
      SPO_NAMESPACE: 'ns1',
      SPO_LEADER_ELECTION_NAMESPACE: 'ops',
      SPO_LEADER_ELECTION_ID: 'lease-x',
      SPO_POD_NAME: 'op-0',
      SPO_LOG_LEVEL: 'warn',
    };
    expect(parse([], env)).to.deep.include({
      metricsPort: 9100,
      namespace: 'ns1',
      leaderElectionNamespace: 'ops',
      leaderElectionId: 'lease-x',
      identity: 'op-0',
      logLevel: 'warn',
    });
    expect(parse(['--metrics-port=9200'], env).metricsPort).to.equal(9200);
  });

  it('takes the Lease namespace from the pod namespace, and the chart Lease name variable', () => {
    expect(parse([], { SPO_POD_NAMESPACE: 'spo-system', SPO_LEADER_ELECTION_LEASE_NAME: 'spo-lease' })).to.deep.include({
      leaderElectionNamespace: 'spo-system',
      leaderElectionId: 'spo-lease',
    });
  });

  it('reports every bad value at once, naming the flag or variable', () => {
    const found = problems(['--metrics-port=http', '--bogus', '--concurrency=0'], {
      SPO_LOG_LEVEL: 'loud',
      SPO_NAMESPACE: 'Bad_NS',
      SPO_LEADER_ELECT: 'maybe',
    });
    expect(found.join('\n')).to.include("--metrics-port='http' is not a whole number");
    expect(found.join('\n')).to.include('unknown flag --bogus');
    expect(found.join('\n')).to.include('--concurrency=0 is out of range');
    expect(found.join('\n')).to.include("SPO_LOG_LEVEL='loud'");
    expect(found.join('\n')).to.include("SPO_NAMESPACE='Bad_NS'");
    expect(found.join('\n')).to.include("SPO_LEADER_ELECT='maybe' is not a boolean");
    expect(found).to.have.length(6);
  });

  it('refuses out-of-range ports, inconsistent lease timings, unknown controllers, missing values', () => {
    expect(problems(['--metrics-port=70000'])[0]).to.include('out of range');
    expect(problems(['--lease-duration-seconds=5', '--renew-deadline-seconds=6'])[0]).to.include('lease duration (5) > renew deadline (6)');
    expect(problems(['--controllers=pool,drainer'])[0]).to.include("unknown controller 'drainer'");
    expect(problems(['--namespace'])[0]).to.include('--namespace needs a value');
    expect(problems(['stray'])[0]).to.include("unexpected argument 'stray'");
  });

  it('--help asks for the usage', () => {
    expect(() => parse(['--help'])).to.throw(HelpRequested);
  });

  it('takes the leader election and resync defaults from their one source', () => {
    const c = parse([]);
    expect(c.leaseDurationMs).to.equal(DEFAULT_LEASE_DURATION_MS);
    expect(c.renewDeadlineMs).to.equal(DEFAULT_RENEW_DEADLINE_MS);
    expect(c.retryPeriodMs).to.equal(DEFAULT_RETRY_PERIOD_MS);
    expect(c.resyncMs).to.equal(600_000);
    expect(USAGE).to.include(`(SPO_LEASE_DURATION_SECONDS, ${DEFAULT_LEASE_DURATION_MS / 1000})`);
  });

  it('generates worker NetworkPolicies only when asked, and then needs the operator namespace and pod labels', () => {
    expect(parse().workerNetworkPolicy).to.equal(undefined);
    const c = parse([], {
      SPO_WORKER_NETWORK_POLICY: 'true',
      SPO_POD_NAMESPACE: 'spo-system',
      SPO_OPERATOR_POD_LABELS: 'app.kubernetes.io/name=session-pool-operator,app.kubernetes.io/instance=spo',
      SPO_WORKER_NETWORK_POLICY_EXTRA_PEERS: '[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
    });
    expect(c.workerNetworkPolicy).to.deep.equal({
      operatorNamespace: 'spo-system',
      operatorPodLabels: { 'app.kubernetes.io/name': 'session-pool-operator', 'app.kubernetes.io/instance': 'spo' },
      extraPeers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
    });
    const missing = problems(['--worker-network-policy']).join('\n');
    expect(missing).to.match(/needs the operator namespace/);
    expect(missing).to.match(/needs the operator's pod labels/);
    const bad = problems([
      '--worker-network-policy',
      '--operator-namespace=spo',
      '--operator-pod-labels=a=b',
      '--worker-network-policy-extra-peers=[1]',
    ]);
    expect(bad.join()).to.match(/--worker-network-policy-extra-peers\[0\] is not a NetworkPolicyPeer/);
  });
});
