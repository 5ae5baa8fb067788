// Shared by the CRD tests against the real apiserver (crds*.int.test.ts): a fixture that
// installs the CRDs and a throw-away namespace for one describe, helpers that create and patch
// pools and migrations there, and expectRefused, which asserts a 422 and its message.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';
import { installCrds } from './install.ts';
import { API_VERSION, GROUP, VERSION } from './meta.ts';
import { SESSION_POOL_KIND, SESSION_POOL_PLURAL, type SessionPool, type SessionPoolSpec } from './session-pool.ts';
import { SESSION_MIGRATION_KIND, SESSION_MIGRATION_PLURAL, type SessionMigration, type SessionMigrationSpec } from './session-migration.ts';
import type { DeepPartial } from './defaults.ts';

/** Well-formed session ids (base64url, 22 to 64 characters). */
export const SESSION_A = 'c2Vzc2lvbi1hYmMxMjM0NTY3ODkwYWJj';
export const SESSION_B = 'c2Vzc2lvbi1kZWYxMjM0NTY3ODkwZGVm';

export const minimalPool: DeepPartial<SessionPoolSpec> = {
  replicas: 2,
  worker: { image: 'example.com/worker:1' },
  store: { endpoints: ['redis-0.redis:6379'] },
};

/**
 * Installs the CRDs and creates a namespace of its own (prefix-xxxxxx) before the tests of the
 * describe it is called in, and deletes the namespace after them.
 */
export function crdsOnApiserver(prefix: string) {
  let kc: KubeConfig | undefined;
  let objects: CustomObjectsApi | undefined;
  const namespace = `${prefix}-${randomBytes(3).toString('hex')}`;
  const client = (): CustomObjectsApi => {
    if (!objects) throw new Error('the CRD fixture is used before its before() hook ran');
    return objects;
  };

  const poolBody = (name: string, spec: DeepPartial<SessionPoolSpec>) => ({
    apiVersion: API_VERSION,
    kind: SESSION_POOL_KIND,
    metadata: { name },
    spec,
  });
  const migrationBody = (name: string, spec: DeepPartial<SessionMigrationSpec>) => ({
    apiVersion: API_VERSION,
    kind: SESSION_MIGRATION_KIND,
    metadata: { name },
    spec,
  });
  const createPool = async (name: string, spec: DeepPartial<SessionPoolSpec>) =>
    (await client().createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_POOL_PLURAL,
      body: poolBody(name, spec),
    })) as SessionPool;
  const createMigration = async (name: string, spec: DeepPartial<SessionMigrationSpec>) =>
    (await client().createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_MIGRATION_PLURAL,
      body: migrationBody(name, spec),
    })) as SessionMigration;
  const mergePatch = async (plural: string, name: string, body: object) =>
    (await client().patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural, name, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as unknown;

  /** Expects the call to be refused (422 unless told) with a message containing every fragment. */
  async function expectRefused(call: Promise<unknown>, ...fragments: string[]): Promise<string> {
    try {
      await call;
    } catch (err) {
      expect(err, String(err)).to.be.instanceOf(ApiException);
      const apiError = err as ApiException<unknown>;
      expect(apiError.code, String(apiError.body)).to.equal(422);
      const body = typeof apiError.body === 'string' ? apiError.body : JSON.stringify(apiError.body);
      const message = (JSON.parse(body) as { message: string }).message;
      for (const fragment of fragments) expect(message).to.contain(fragment);
      return message;
    }
    expect.fail(`expected the apiserver to refuse, with: ${fragments.join(' | ')}`);
  }

  before(async function () {
    kc = new KubeConfig();
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    const names = await installCrds(kc);
    expect(names).to.deep.equal(['sessionpools.dspex.io', 'sessionmigrations.dspex.io']);
    objects = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async function () {
    if (kc)
      await kc
        .makeApiClient(CoreV1Api)
        .deleteNamespace({ name: namespace })
        .catch(() => undefined);
  });

  return {
    namespace,
    get kc(): KubeConfig {
      if (!kc) throw new Error('the CRD fixture is used before its before() hook ran');
      return kc;
    },
    get objects(): CustomObjectsApi {
      return client();
    },
    createPool,
    createMigration,
    mergePatch,
    expectRefused,
  };
}
