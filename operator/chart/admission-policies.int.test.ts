// The chart's ValidatingAdmissionPolicies on the real apiserver: the operator's ServiceAccount
// may set the pod-deletion-cost annotation on a pool's worker pods and do nothing else to any
// pod, and a SessionPool naming a store endpoint outside admissionPolicies.allowedStoreEndpoints
// is refused. The ServiceAccount gets RBAC to patch every pod of the namespace, so a refusal
// here is the policy's, not RBAC's.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { render } from '../../charts/testing.ts';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';
import { installCrds } from '../api/install.ts';

interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

function kubectl(args: string[], input?: string): Result {
  const { kubeconfigPath } = kubeTestEnv();
  const result = spawnSync('kubectl', ['--kubeconfig', kubeconfigPath, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

function ok(result: Result): Result {
  expect(result.status, result.stderr).to.equal(0);
  return result;
}

/** Retries `attempt` until it is refused by the policy (policies take effect a moment after creation); at most 30 tries. */
async function firstRefusal(attempt: () => Result): Promise<Result> {
  let last: Result | undefined;
  for (let i = 0; i < 30; i++) {
    last = attempt();
    if (last.status !== 0 && last.stderr.includes('ValidatingAdmissionPolicy')) return last;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  expect.fail(`never refused by the admission policy; last answer: ${last?.stdout} ${last?.stderr}`);
}

describe('chart: admission policies on the apiserver', function () {
  this.timeout(120_000);
  const namespace = `spo-vap-${process.pid}`;
  const release = `vap${process.pid}`;
  const serviceAccount = `${release}-session-pool-operator`;
  const as = `--as=system:serviceaccount:${namespace}:${serviceAccount}`;
  const COST = 'controller.kubernetes.io/pod-deletion-cost';
  let policyObjects: string;

  before(async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    await installCrds(kc);
    ok(kubectl(['create', 'namespace', namespace]));
    const objects = render({ admissionPolicies: { allowedStoreEndpoints: ['redis-[0-9]+\\.redis:6379'] } }, { namespace, release }).filter(
      (o) => o.kind.startsWith('ValidatingAdmissionPolicy'),
    );
    expect(objects).to.have.length(4);
    policyObjects = objects.map((o) => stringify(o)).join('---\n');
    ok(kubectl(['apply', '-f', '-'], policyObjects));
    ok(kubectl(['-n', namespace, 'create', 'serviceaccount', serviceAccount]));
    ok(kubectl(['-n', namespace, 'create', 'role', 'patch-pods', '--verb=get,patch', '--resource=pods']));
    ok(
      kubectl([
        '-n',
        namespace,
        'create',
        'rolebinding',
        'patch-pods',
        '--role=patch-pods',
        `--serviceaccount=${namespace}:${serviceAccount}`,
      ]),
    );
    for (const [name, labels] of [
      ['worker', { 'dspex.io/pool': 'web' }],
      ['database', { app: 'db' }],
    ] as const) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace, labels },
        spec: { containers: [{ name: 'c', image: 'example.com/c:1' }] },
      };
      ok(kubectl(['apply', '-f', '-'], stringify(pod)));
    }
  });

  after(() => {
    if (policyObjects) kubectl(['delete', '--ignore-not-found', '-f', '-'], policyObjects);
    kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it("lets the operator's ServiceAccount set the deletion cost on a pool's worker pod, and on no other pod", async () => {
    const refused = await firstRefusal(() => kubectl(['-n', namespace, as, 'annotate', 'pod', 'database', `${COST}=-100`]));
    expect(refused.stderr).to.contain('may patch only worker pods of a SessionPool');
    ok(kubectl(['-n', namespace, as, 'annotate', 'pod', 'worker', `${COST}=-2147483648`]));
    const stored = ok(kubectl(['-n', namespace, 'get', 'pod', 'worker', '-o', 'jsonpath={.metadata.annotations}']));
    expect(JSON.parse(stored.stdout)).to.have.property(COST, '-2147483648');
    // Anyone else is not concerned by the policy.
    ok(kubectl(['-n', namespace, 'annotate', 'pod', 'database', `${COST}=-100`]));
  });

  it("refuses any other change the operator's ServiceAccount makes to a worker pod", () => {
    const other = kubectl(['-n', namespace, as, 'annotate', 'pod', 'worker', 'example.com/note=x']);
    expect(other.status).to.not.equal(0);
    expect(other.stderr).to.contain('may change only the controller.kubernetes.io/pod-deletion-cost annotation');
    const label = kubectl(['-n', namespace, as, 'label', 'pod', 'worker', 'dspex.io/pool=other', '--overwrite']);
    expect(label.status).to.not.equal(0);
    expect(label.stderr).to.contain("may not change a pod's labels");
    const spec = kubectl(['-n', namespace, as, 'set', 'image', 'pod/worker', 'c=example.com/evil:1']);
    expect(spec.status).to.not.equal(0);
    expect(spec.stderr).to.contain("may not change a pod's labels, owners, finalizers or spec");
  });

  it('refuses a SessionPool whose store endpoint is not allowed, and accepts one that is', async () => {
    const pool = (name: string, endpoint: string) =>
      stringify({
        apiVersion: 'dspex.io/v1alpha1',
        kind: 'SessionPool',
        metadata: { name, namespace },
        spec: { replicas: 1, worker: { image: 'example.com/w:1' }, store: { endpoints: ['redis-0.redis:6379', endpoint] } },
      });
    const refused = await firstRefusal(() => kubectl(['create', '-f', '-'], pool('exfiltrate', 'attacker.example.com:6379')));
    expect(refused.stderr).to.contain('spec.store.endpoints: attacker.example.com:6379 not allowed by the cluster');
    // Matched against the whole endpoint: a prefix or suffix of an allowed one is not enough.
    const partial = kubectl(['create', '-f', '-'], pool('partial', 'evilredis-1.redis:6379'));
    expect(partial.status).to.not.equal(0);
    expect(partial.stderr).to.contain('evilredis-1.redis:6379 not allowed by the cluster');
    ok(kubectl(['create', '-f', '-'], pool('allowed', 'redis-1.redis:6379')));
  });
});
