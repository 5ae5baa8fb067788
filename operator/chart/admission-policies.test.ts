// The chart's ValidatingAdmissionPolicies, rendered with the pinned helm (no cluster): what they
// match and bind. admission-policies.int.test.ts proves on the real apiserver that they refuse.
import { expect } from 'chai';
import { render, type K8sObject } from '../../charts/testing.ts';

interface Policy extends K8sObject {
  spec: {
    failurePolicy: string;
    matchConstraints: { resourceRules: { apiGroups: string[]; resources: string[]; operations: string[] }[] };
    matchConditions?: { name: string; expression: string }[];
    variables?: { name: string; expression: string }[];
    validations: { expression: string; message?: string; messageExpression?: string }[];
  };
}
interface Binding extends K8sObject {
  spec: { policyName: string; validationActions: string[] };
}

const policies = (objects: K8sObject[]) => objects.filter((o): o is Policy => o.kind === 'ValidatingAdmissionPolicy');
const bindings = (objects: K8sObject[]) => objects.filter((o): o is Binding => o.kind === 'ValidatingAdmissionPolicyBinding');

describe('chart: admission policies', function () {
  this.timeout(30_000);

  it("limits the operator's pod patches by default: its ServiceAccount only, UPDATE of pods, denied on failure", () => {
    const objects = render(undefined, { namespace: 'ops', release: 'spo' });
    const [policy, ...others] = policies(objects);
    expect(others).to.have.length(0);
    expect(policy?.metadata.name).to.equal('spo-session-pool-operator-pod-patches');
    expect(policy?.spec.failurePolicy).to.equal('Fail');
    expect(policy?.spec.matchConstraints.resourceRules).to.deep.equal([
      { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] },
    ]);
    expect(policy?.spec.matchConditions?.[0]?.expression).to.equal(
      "request.userInfo.username == 'system:serviceaccount:ops:spo-session-pool-operator'",
    );
    const messages = policy?.spec.validations.map((v) => v.message) ?? [];
    expect(messages.join('\n')).to.contain('label dspex.io/pool').and.to.contain('pod-deletion-cost');
    expect(bindings(objects).map((b) => b.spec)).to.deep.equal([
      { policyName: 'spo-session-pool-operator-pod-patches', validationActions: ['Deny'] },
    ]);
  });

  it('follows serviceAccount.name, and goes with admissionPolicies.podPatches=false or rbac.create=false', () => {
    const named = policies(render({ serviceAccount: { name: 'custom' } }, { namespace: 'ops' }));
    expect(named[0]?.spec.matchConditions?.[0]?.expression).to.contain("'system:serviceaccount:ops:custom'");
    for (const values of [{ admissionPolicies: { podPatches: false } }, { rbac: { create: false } }]) {
      const objects = render(values);
      expect(policies(objects), JSON.stringify(values)).to.have.length(0);
      expect(bindings(objects), JSON.stringify(values)).to.have.length(0);
    }
  });

  it('refuses SessionPools with endpoints outside admissionPolicies.allowedStoreEndpoints, only when set', () => {
    const objects = render({ admissionPolicies: { allowedStoreEndpoints: ['redis-[0-9]+\\.redis:6379', '10\\.0\\.0\\.[0-9]+:6379'] } });
    const policy = policies(objects).find((p) => p.metadata.name.endsWith('-store-endpoints'));
    expect(policy?.spec.matchConstraints.resourceRules[0]).to.deep.include({
      apiGroups: ['dspex.io'],
      resources: ['sessionpools'],
      operations: ['CREATE', 'UPDATE'],
    });
    // The patterns reach CEL as a JSON list literal, backslashes intact.
    expect(policy?.spec.variables).to.deep.equal([
      { name: 'allowed', expression: '["redis-[0-9]+\\\\.redis:6379","10\\\\.0\\\\.0\\\\.[0-9]+:6379"]' },
    ]);
    expect(bindings(objects).map((b) => b.spec.policyName)).to.include(policy?.metadata.name);
    expect(policies(render()).some((p) => p.metadata.name.endsWith('-store-endpoints'))).to.equal(false);
  });
});
