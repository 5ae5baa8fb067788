// The CRDs against the real apiserver: they install and become Established, valid objects are
// accepted with the defaults the TypeScript defaulting also gives, and every invalid case is
// refused with a message that says what is wrong.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';
import { installCrds } from './install.ts';
import { API_VERSION, GROUP, VERSION } from './meta.ts';
import { SESSION_POOL_KIND, SESSION_POOL_PLURAL, type SessionPool, type SessionPoolSpec } from './session-pool.ts';
import { SESSION_MIGRATION_KIND, SESSION_MIGRATION_PLURAL, type SessionMigration, type SessionMigrationSpec } from './session-migration.ts';
import { defaultSessionMigrationSpec, defaultSessionPoolSpec, type DeepPartial } from './defaults.ts';

const run = promisify(execFile);
/** Well-formed session ids (base64url, 22 to 64 characters). */
const SESSION_A = 'c2Vzc2lvbi1hYmMxMjM0NTY3ODkwYWJj';
const SESSION_B = 'c2Vzc2lvbi1kZWYxMjM0NTY3ODkwZGVm';

describe('api: CRDs on the real apiserver', function () {
  this.timeout(60_000);
  let kc: KubeConfig;
  let objects: CustomObjectsApi;
  const namespace = `api-crds-${randomBytes(3).toString('hex')}`;

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
    (await objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_POOL_PLURAL,
      body: poolBody(name, spec),
    })) as SessionPool;
  const createMigration = async (name: string, spec: DeepPartial<SessionMigrationSpec>) =>
    (await objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_MIGRATION_PLURAL,
      body: migrationBody(name, spec),
    })) as SessionMigration;
  const mergePatch = async (plural: string, name: string, body: object) =>
    (await objects.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural, name, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as unknown;

  const minimalPool: DeepPartial<SessionPoolSpec> = {
    replicas: 2,
    worker: { image: 'example.com/worker:1' },
    store: { endpoints: ['redis-0.redis:6379'] },
  };

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

  it('installs again over itself (upgrade by server-side apply)', async function () {
    expect(await installCrds(kc)).to.have.length(2);
  });

  it('accepts a minimal pool and fills in the same defaults as defaultSessionPoolSpec()', async function () {
    const created = await createPool('minimal', minimalPool);
    expect(created.spec).to.deep.equal(defaultSessionPoolSpec(minimalPool));
    expect(created.spec.sessions).to.deep.equal({
      ttlSeconds: 3600,
      anonymousTtlSeconds: 300,
      sweepIntervalSeconds: 30,
      maxSessionBytes: 1048576,
      idleSeconds: 300,
    });
    expect(created.spec.sessionMode).to.equal('Centralized');
    expect(created.spec.store.keyPrefix).to.equal('spo');
    expect(created.spec.store.durability).to.equal('leader');
    expect(created.spec.autoscaling.scaleDownStabilizationSeconds).to.equal(300);
    expect(created.spec.maintenance).to.deep.equal({ evacuateOnCordon: true, drainDeadlineSeconds: 300, evictAfterEvacuation: true });
    expect(created.spec.deletionPolicy).to.equal('Delete');
    expect(created.spec.worker.port).to.equal(8080);
  });

  it('accepts an autoscaled pool without replicas, and a full pool', async function () {
    await createPool('autoscaled', {
      worker: { image: 'w:1' },
      store: { endpoints: ['10.0.0.1:7000'] },
      autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 20 },
    });
    const full = await createPool('full', {
      replicas: 3,
      template: {
        metadata: { labels: { team: 'ml' } },
        spec: { nodeSelector: { pool: 'workers' }, tolerations: [{ key: 'dedicated', operator: 'Exists' }] },
      },
      worker: { image: 'w:1', port: 9000, resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: 1073741824 } } },
      store: {
        endpoints: ['[::1]:7000', 'redis.svc:7001'],
        credentialsSecretRef: { name: 'redis-auth', usernameKey: 'user' },
        tls: { enabled: true, caSecretRef: { name: 'redis-ca' } },
        durability: 'replica',
      },
      sessionMode: 'Dual',
    });
    expect(full.spec.store.credentialsSecretRef?.passwordKey).to.equal('password');
    expect(full.spec.store.tls.caSecretRef?.key).to.equal('ca.crt');
    expect(full.spec.template?.spec?.nodeSelector).to.deep.equal({ pool: 'workers' });
  });

  it('refuses minReplicas above maxReplicas', async function () {
    await expectRefused(
      createPool('bad-minmax', { ...minimalPool, autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 } }),
      'autoscaling.minReplicas must not be greater than autoscaling.maxReplicas',
    );
  });

  it('refuses an anonymous TTL above the session TTL', async function () {
    await expectRefused(
      createPool('bad-ttl', { ...minimalPool, sessions: { ttlSeconds: 60, anonymousTtlSeconds: 120 } }),
      'sessions.anonymousTtlSeconds must not be greater than sessions.ttlSeconds',
    );
  });

  it('accepts a pool with a handler container (defaults filled in) and refuses one on the worker port', async function () {
    const created = await createPool('with-handler', { ...minimalPool, handler: { image: 'spo-dspy-worker:1' } });
    expect((created as { spec: { handler?: unknown } }).spec.handler).to.deep.equal({
      image: 'spo-dspy-worker:1',
      port: 8081,
      timeoutSeconds: 60,
    });
    await expectRefused(
      createPool('handler-port', { ...minimalPool, handler: { image: 'h:1', port: 8080 } }),
      'spec.handler.port must differ from spec.worker.port',
    );
  });

  it('refuses a bad enum value and says which values are allowed', async function () {
    await expectRefused(
      createPool('bad-mode', { ...minimalPool, sessionMode: 'Local' as never }),
      'spec.sessionMode',
      'Unsupported value: "Local"',
      '"Centralized", "Dual", "WorkerLocal"',
    );
    await expectRefused(
      createPool('bad-durability', { ...minimalPool, store: { endpoints: ['r:6379'], durability: 'all' as never } }),
      'spec.store.durability',
      '"leader", "replica"',
    );
  });

  it('refuses a pool without store endpoints, with an empty list, or a malformed endpoint', async function () {
    await expectRefused(
      createPool('no-endpoints', { replicas: 1, worker: { image: 'w:1' }, store: {} }),
      'spec.store.endpoints: Required value',
    );
    await expectRefused(
      createPool('empty-endpoints', { replicas: 1, worker: { image: 'w:1' }, store: { endpoints: [] } }),
      'spec.store.endpoints',
      'should have at least 1 items',
    );
    await expectRefused(
      createPool('bad-endpoint', { replicas: 1, worker: { image: 'w:1' }, store: { endpoints: ['redis-without-port'] } }),
      'spec.store.endpoints[0]',
    );
  });

  it('refuses a pool with neither replicas nor autoscaling, and a bad name', async function () {
    await expectRefused(
      createPool('no-replicas', { worker: { image: 'w:1' }, store: { endpoints: ['r:6379'] } }),
      'spec.replicas is required unless spec.autoscaling.enabled is true',
    );
    await expectRefused(createPool('9-starts-with-digit', minimalPool), 'metadata.name must be a DNS-1035 label');
  });

  it('refuses TLS settings without tls.enabled, and an IP as tls.serverName', async function () {
    await expectRefused(
      createPool('bad-tls', { ...minimalPool, store: { endpoints: ['r:6379'], tls: { insecureSkipVerify: true } } }),
      'tls.insecureSkipVerify requires tls.enabled: true',
    );
    await expectRefused(
      createPool('bad-tls-name', { ...minimalPool, store: { endpoints: ['r:6379'], tls: { serverName: 'redis.data.svc' } } }),
      'tls.serverName requires tls.enabled: true',
    );
    await expectRefused(
      createPool('bad-tls-cert', { ...minimalPool, store: { endpoints: ['r:6379'], tls: { clientCertSecretRef: { name: 'c' } } } }),
      'tls.clientCertSecretRef requires tls.enabled: true',
    );
    await expectRefused(
      createPool('bad-tls-ip', { ...minimalPool, store: { endpoints: ['r:6379'], tls: { enabled: true, serverName: '10.0.0.1' } } }),
      'tls.serverName is a DNS name, not an IP address',
    );
  });

  it('refuses a keyPrefix change and a session mode switch that skips Dual; allows it through Dual', async function () {
    await createPool('mode-switch', { ...minimalPool, sessionMode: 'WorkerLocal' });
    await expectRefused(
      mergePatch(SESSION_POOL_PLURAL, 'mode-switch', { spec: { store: { keyPrefix: 'other' } } }),
      'store.keyPrefix is immutable',
    );
    await expectRefused(
      mergePatch(SESSION_POOL_PLURAL, 'mode-switch', { spec: { sessionMode: 'Centralized' } }),
      'spec.sessionMode must change through Dual',
    );
    await mergePatch(SESSION_POOL_PLURAL, 'mode-switch', { spec: { sessionMode: 'Dual' } });
    const pool = (await mergePatch(SESSION_POOL_PLURAL, 'mode-switch', { spec: { sessionMode: 'Centralized' } })) as SessionPool;
    expect(pool.spec.sessionMode).to.equal('Centralized');
  });

  it('scales through the scale subresource (kubectl scale, HPA) and takes a full status', async function () {
    await createPool('scalable', minimalPool);
    await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: SESSION_POOL_PLURAL,
        name: 'scalable',
        body: {
          status: {
            replicas: 2,
            readyReplicas: 2,
            desiredReplicas: 5,
            selector: 'dspex.io/pool=scalable',
            phase: 'Running',
            activeSessions: 10,
            anonymousSessions: 1,
            sessionsPerWorker: {
              min: 4,
              max: 6,
              mean: 5,
              workers: [
                { worker: 'scalable-a', sessions: 6 },
                { worker: 'scalable-b', sessions: 4 },
              ],
            },
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'AllWorkersReady',
                message: '',
                lastTransitionTime: '2026-01-01T00:00:00Z',
                observedGeneration: 1,
              },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await run('kubectl', ['--kubeconfig', kubeTestEnv().kubeconfigPath, '-n', namespace, 'scale', 'sessionpool/scalable', '--replicas=5']);
    const scale = (await objects.getNamespacedCustomObjectScale({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_POOL_PLURAL,
      name: 'scalable',
    })) as { spec: { replicas: number }; status: { replicas: number; selector: string } };
    expect(scale.spec.replicas).to.equal(5);
    expect(scale.status).to.deep.equal({ replicas: 2, selector: 'dspex.io/pool=scalable' });
    const { stdout } = await run('kubectl', ['--kubeconfig', kubeTestEnv().kubeconfigPath, '-n', namespace, 'get', 'sp', 'scalable']);
    expect(stdout).to.match(/NAME\s+DESIRED\s+READY\s+SESSIONS\s+MODE\s+PHASE\s+AGE/);
    expect(stdout).to.match(/scalable\s+5\s+2\s+10\s+Centralized\s+Running/);
    await expectRefused(
      objects.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: SESSION_POOL_PLURAL,
          name: 'scalable',
          body: { status: { phase: 'Exploded' } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
      'status.phase',
      'Unsupported value',
    );
  });

  it('accepts a migration of each kind with defaults matching defaultSessionMigrationSpec()', async function () {
    const specs: Record<string, DeepPartial<SessionMigrationSpec>> = {
      'evacuate-node': { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { nodeName: 'node-1', evictPods: true } },
      'evacuate-pods': { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { pods: ['minimal-a', 'minimal-b'] } },
      migrate: {
        poolRef: { name: 'minimal' },
        type: 'Migrate',
        migrate: { sessionIds: [SESSION_A, SESSION_B], targetWorker: 'minimal-a' },
      },
      rebalance: { poolRef: { name: 'minimal' }, type: 'Rebalance', rebalance: { weights: { 'minimal-a': 2 } }, dryRun: true },
    };
    for (const [name, spec] of Object.entries(specs)) {
      const created = await createMigration(name, spec);
      expect(created.spec, name).to.deep.equal(defaultSessionMigrationSpec(spec));
    }
    const rebalance = (await objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_MIGRATION_PLURAL,
      name: 'rebalance',
    })) as SessionMigration;
    expect(rebalance.spec).to.include({ batchSize: 500, deadlineSeconds: 300, onFailure: 'Rollback', dryRun: true });
    expect(rebalance.spec.rebalance).to.deep.equal({ weights: { 'minimal-a': 2 }, maxMovesPerRound: 1000, tolerancePercent: 10 });
  });

  it('refuses a change of a migration spec after creation', async function () {
    await createMigration('immutable', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { nodeName: 'node-1' } });
    await expectRefused(mergePatch(SESSION_MIGRATION_PLURAL, 'immutable', { spec: { batchSize: 10 } }), 'spec is immutable');
    // Status stays writable through the status subresource.
    const updated = (await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: SESSION_MIGRATION_PLURAL,
        name: 'immutable',
        body: {
          status: {
            phase: 'Running',
            plan: { totalSessions: 3, moves: [{ from: 'a', to: 'b', sessions: 3 }] },
            progress: { moved: 1, remaining: 2, failed: 0 },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as SessionMigration;
    expect(updated.status?.progress).to.deep.equal({ moved: 1, remaining: 2, failed: 0 });
  });

  it('refuses an Evacuate without pods or nodeName, or with both', async function () {
    await expectRefused(
      createMigration('evac-empty', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: {} }),
      'evacuate needs exactly one of pods (worker pod names) or nodeName',
    );
    await expectRefused(
      createMigration('evac-both', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { pods: ['a'], nodeName: 'n' } }),
      'evacuate needs exactly one of pods',
    );
    await expectRefused(
      createMigration('evac-missing', { poolRef: { name: 'minimal' }, type: 'Evacuate' }),
      'spec.evacuate must be set when spec.type is Evacuate',
    );
  });

  it('refuses a sub-object that does not match the type, and a bad type', async function () {
    await expectRefused(
      createMigration('mismatch', { poolRef: { name: 'minimal' }, type: 'Migrate', rebalance: {} }),
      'spec.migrate must be set when spec.type is Migrate',
      'spec.rebalance must be set when spec.type is Rebalance, and only then',
    );
    await expectRefused(
      createMigration('bad-type', { poolRef: { name: 'minimal' }, type: 'Teleport' as never }),
      'spec.type',
      'Unsupported value: "Teleport"',
    );
    await expectRefused(
      createMigration('bad-failure', { poolRef: { name: 'minimal' }, type: 'Rebalance', rebalance: {}, onFailure: 'Ignore' as never }),
      'spec.onFailure',
      '"Rollback", "Stop"',
    );
  });

  it('refuses a store endpoint whose port is 0 or above 65535; accepts 1 and 65535', async function () {
    const withEndpoints = (endpoints: string[]) => ({ ...minimalPool, store: { endpoints } });
    await expectRefused(
      createPool('port-zero', withEndpoints(['redis-0:0'])),
      'spec.store.endpoints[0]',
      'the port of a store endpoint must be 1 to 65535',
    );
    await expectRefused(
      createPool('port-high', withEndpoints(['redis-0:6379', '[::1]:65536'])),
      'spec.store.endpoints[1]',
      'the port of a store endpoint must be 1 to 65535',
    );
    await expectRefused(createPool('port-padded', withEndpoints(['redis-0:06379'])), 'the port of a store endpoint must be 1 to 65535');
    const accepted = await createPool('port-edges', withEndpoints(['redis-0:1', '10.0.0.1:65535', '[fd00::1]:6379']));
    expect(accepted.spec.store.endpoints).to.have.length(3);
  });

  it("refuses a Secret key with '/' or '..', in the credentials and the TLS CA reference", async function () {
    const creds = (ref: Record<string, string>) => ({
      ...minimalPool,
      store: { endpoints: ['r:6379'], credentialsSecretRef: { name: 'c', ...ref } },
    });
    await expectRefused(createPool('key-slash', creds({ passwordKey: 'dir/password' })), 'spec.store.credentialsSecretRef.passwordKey');
    await expectRefused(createPool('key-dots', creds({ usernameKey: '..' })), 'spec.store.credentialsSecretRef.usernameKey');
    await expectRefused(createPool('key-climb', creds({ passwordKey: '../../etc/passwd' })), 'spec.store.credentialsSecretRef.passwordKey');
    await expectRefused(
      createPool('ca-key-dots', {
        ...minimalPool,
        store: { endpoints: ['r:6379'], tls: { enabled: true, caSecretRef: { name: 'ca', key: 'a..crt' } } },
      }),
      'spec.store.tls.caSecretRef.key',
    );
    const accepted = await createPool('key-ok', creds({ usernameKey: 'user-name_1', passwordKey: 'redis.password' }));
    expect(accepted.spec.store.credentialsSecretRef?.passwordKey).to.equal('redis.password');
  });

  it('refuses a Migrate naming a malformed session id', async function () {
    const migrate = (sessionIds: string[]) => ({
      poolRef: { name: 'minimal' },
      type: 'Migrate' as const,
      migrate: { sessionIds, targetWorker: 'minimal-a' },
    });
    await expectRefused(createMigration('id-short', migrate([SESSION_A, 's1'])), 'spec.migrate.sessionIds[1]');
    await expectRefused(createMigration('id-chars', migrate(['../../../../etc/passwd/aaaaaaaaaaaa'])), 'spec.migrate.sessionIds[0]');
    await expectRefused(createMigration('id-long', migrate(['a'.repeat(65)])), 'spec.migrate.sessionIds[0]');
    const accepted = await createMigration('id-ok', migrate([SESSION_A, 'A'.repeat(22), `${'-_'.repeat(32)}`]));
    expect(accepted.spec.migrate?.sessionIds).to.have.length(3);
  });

  it('refuses rebalance weights that are all zero; accepts one above zero, and none', async function () {
    const rebalance = (weights: Record<string, number>) => ({
      poolRef: { name: 'minimal' },
      type: 'Rebalance' as const,
      rebalance: { weights },
    });
    await expectRefused(
      createMigration('weights-zero', rebalance({ 'minimal-a': 0, 'minimal-b': 0 })),
      'spec.rebalance.weights',
      'rebalance.weights must give at least one worker a weight above 0',
    );
    expect((await createMigration('weights-some', rebalance({ 'minimal-a': 0, 'minimal-b': 1 }))).spec.rebalance?.weights).to.deep.equal({
      'minimal-a': 0,
      'minimal-b': 1,
    });
    expect((await createMigration('weights-empty', rebalance({}))).spec.rebalance?.weights).to.deep.equal({});
  });

  it('teaches the API through kubectl explain', async function () {
    let stdout = '';
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        ({ stdout } = await run('kubectl', [
          '--kubeconfig',
          kubeTestEnv().kubeconfigPath,
          'explain',
          'sessionpools.spec.store.durability',
        ]));
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200)); // the OpenAPI document is published a moment after the CRD
      }
    }
    expect(stdout).to.contain('once at least one replica also has it');
  });
});
