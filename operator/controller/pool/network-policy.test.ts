import { expect } from 'chai';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { desiredNetworkPolicy, parseLabels, parsePeers, type WorkerNetworkPolicySettings } from './network-policy.ts';

function pool(): SessionPool {
  const p = newSessionPool('web', 'team-a', { replicas: 1, worker: { image: 'img:1', port: 9000 }, store: { endpoints: ['r:1'] } });
  p.metadata.uid = 'uid-1';
  return p;
}

const settings: WorkerNetworkPolicySettings = {
  operatorNamespace: 'spo-system',
  operatorPodLabels: { 'app.kubernetes.io/name': 'session-pool-operator', 'app.kubernetes.io/instance': 'spo' },
  extraPeers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
};

describe('pool/network-policy', () => {
  it("admits, on the worker port only, the pool's namespace, the operator's pods and the chart's extra peers", () => {
    const np = desiredNetworkPolicy(pool(), settings);
    expect(np.metadata?.name).to.equal('web-workers');
    expect(np.metadata?.namespace).to.equal('team-a');
    expect(np.metadata?.ownerReferences?.[0]).to.include({ kind: 'SessionPool', uid: 'uid-1', controller: true });
    expect(np.spec?.podSelector).to.deep.equal({
      matchLabels: { 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'web' },
    });
    expect(np.spec?.policyTypes).to.deep.equal(['Ingress']);
    expect(np.spec?.ingress).to.have.length(1);
    const rule = np.spec?.ingress?.[0];
    expect(rule?.ports).to.deep.equal([{ protocol: 'TCP', port: 9000 }]);
    expect(rule?._from).to.deep.equal([
      { podSelector: {} },
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'spo-system' } },
        podSelector: { matchLabels: settings.operatorPodLabels },
      },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
  });

  it('parses operator pod labels and reports bad pairs', () => {
    const problems: string[] = [];
    expect(parseLabels('a=b, app.kubernetes.io/name=x', problems, 'L')).to.deep.equal({ a: 'b', 'app.kubernetes.io/name': 'x' });
    expect(problems).to.deep.equal([]);
    parseLabels('novalue,bad key=x,k=bad value', problems, 'L');
    expect(problems).to.have.length(3);
  });

  it('takes extra peers as JSON NetworkPolicyPeers and refuses anything else, naming the entry', () => {
    const problems: string[] = [];
    const peers = parsePeers(
      JSON.stringify([
        {
          namespaceSelector: { matchLabels: { team: 'a' } },
          podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['x'] }] },
        },
        { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
      ]),
      problems,
      'P',
    );
    expect(problems).to.deep.equal([]);
    expect(peers).to.have.length(2);
    const bad: string[] = [];
    parsePeers(
      JSON.stringify([{}, { podSelector: { matchLabels: { a: 1 } } }, { ipBlock: { cidr: '1.2.3.4/32' }, podSelector: {} }, { other: {} }]),
      bad,
      'P',
    );
    expect(bad.map((p) => p.slice(0, 4))).to.deep.equal(['P[0]', 'P[1]', 'P[2]', 'P[3]']);
    const notJson: string[] = [];
    parsePeers('{', notJson, 'P');
    parsePeers('{}', notJson, 'P');
    expect(notJson).to.have.length(2);
  });
});
