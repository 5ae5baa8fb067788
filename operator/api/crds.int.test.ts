// The SessionPool CRD against the real apiserver: it installs and becomes Established, valid
// pools are accepted with the defaults the TypeScript defaulting also gives, every invalid case
// is refused with a message that says what is wrong, and the scale subresource and kubectl
// explain work. The SessionMigration CRD: crds-migration.int.test.ts; the fixture:
// crds-test-support.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeTestEnv } from '../../e2e/harness/test-env.ts';
import { installCrds } from './install.ts';
import { GROUP, VERSION } from './meta.ts';
import { SESSION_POOL_PLURAL, type SessionPool } from './session-pool.ts';
import { defaultSessionPoolSpec } from './defaults.ts';
import { crdsOnApiserver, minimalPool } from './crds-test-support.ts';

const run = promisify(execFile);

describe('api: CRDs on the real apiserver', function () {
  this.timeout(60_000);
  const api = crdsOnApiserver('api-crds');
  const { namespace, createPool, mergePatch, expectRefused } = api;

  it('installs again over itself (upgrade by server-side apply)', async function () {
    expect(await installCrds(api.kc)).to.have.length(2);
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
    await api.objects.patchNamespacedCustomObjectStatus(
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
    const scale = (await api.objects.getNamespacedCustomObjectScale({
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
      api.objects.patchNamespacedCustomObjectStatus(
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
