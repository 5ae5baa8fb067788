// Every example in examples/ applies cleanly against the real apiserver (server-side dry run,
// so the CRD schema and CEL rules are checked but nothing is stored).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';
import { installCrds } from './install.ts';
import { EXAMPLES_DIR, loadExamples } from './examples.ts';
import { GROUP, VERSION } from './meta.ts';
import { SESSION_POOL_KIND, SESSION_POOL_PLURAL } from './session-pool.ts';
import { SESSION_MIGRATION_PLURAL } from './session-migration.ts';

const run = promisify(execFile);

describe('api: examples on the real apiserver', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  const namespace = `api-examples-${randomBytes(3).toString('hex')}`;

  before(async function () {
    kc = new KubeConfig();
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    await installCrds(kc);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async function () {
    if (kc)
      await kc
        .makeApiClient(CoreV1Api)
        .deleteNamespace({ name: namespace })
        .catch(() => undefined);
  });

  it('creates every example with a server-side dry run and gets the defaults back', async function () {
    const objects = kc.makeApiClient(CustomObjectsApi);
    const examples = loadExamples();
    expect(examples.length).to.be.at.least(8);
    for (const { file, object } of examples) {
      const plural = object.kind === SESSION_POOL_KIND ? SESSION_POOL_PLURAL : SESSION_MIGRATION_PLURAL;
      const created = (await objects
        .createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body: object, dryRun: 'All' })
        .catch((err: unknown) => {
          throw new Error(`${file}: ${String(err)}`);
        })) as { metadata: { name: string }; spec: Record<string, unknown> };
      expect(created.metadata.name, file).to.equal(object.metadata.name);
      // Defaulted fields came back filled in.
      expect(created.spec, file).to.include.keys(
        object.kind === SESSION_POOL_KIND ? ['sessions', 'sessionMode', 'deletionPolicy'] : ['batchSize', 'deadlineSeconds', 'onFailure'],
      );
    }
    const stored = (await objects.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_POOL_PLURAL,
    })) as { items: unknown[] };
    expect(stored.items, 'a dry run stores nothing').to.have.length(0);
  });

  it('applies the whole folder with kubectl apply --server-side --dry-run=server', async function () {
    const { stdout } = await run('kubectl', [
      '--kubeconfig',
      kubeTestEnv().kubeconfigPath,
      '-n',
      namespace,
      'apply',
      '--server-side',
      '--dry-run=server',
      '-f',
      EXAMPLES_DIR,
    ]);
    const lines = stdout.trim().split('\n');
    expect(lines).to.have.length(loadExamples().length);
    for (const line of lines) expect(line).to.match(/serverside-applied \(server dry run\)$/);
  });
});
