// The kind scripts cannot run here (no Docker engine); their manifests are still checked:
// a server-side dry run against the real local apiserver validates every object.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { binaries } from '../harness/paths.ts';
import { run } from '../harness/processes.ts';
import { kubeTestEnv } from '../harness/test-env.ts';

const here = path.dirname(new URL(import.meta.url).pathname);

describe('kind manifests', () => {
  it('the Redis Cluster manifest passes a server-side dry run', async () => {
    const { kubeconfigPath } = kubeTestEnv();
    const kubectl = (args: string[]) => run(binaries().kubectl, ['--kubeconfig', kubeconfigPath, ...args]);
    // Namespaced objects need their namespace to exist, even in a dry run.
    await kubectl(['create', 'namespace', 'redis']).catch((error: Error) => {
      if (!/AlreadyExists/.test(error.message)) throw error;
    });
    try {
      const out = await kubectl(['apply', '--dry-run=server', '-f', path.join(here, 'redis-cluster.yaml')]);
      for (const kind of [
        'configmap/redis-cluster',
        'service/redis-cluster',
        'statefulset.apps/redis-cluster',
        'job.batch/redis-cluster-create',
      ]) {
        expect(out).to.contain(kind);
      }
      expect(out).to.contain('(server dry run)');
    } finally {
      await kubectl(['delete', 'namespace', 'redis', '--wait=false']);
    }
  });

  it('the kind cluster config has a control plane and two workers', () => {
    const [doc] = parseAllDocuments(readFileSync(path.join(here, 'kind-config.yaml'), 'utf8'));
    const config = doc?.toJS() as { kind: string; apiVersion: string; nodes: { role: string }[] };
    expect(config.kind).to.equal('Cluster');
    expect(config.apiVersion).to.equal('kind.x-k8s.io/v1alpha4');
    expect(config.nodes.map((n) => n.role)).to.deep.equal(['control-plane', 'worker', 'worker']);
  });
});
