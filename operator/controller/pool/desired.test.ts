import { expect } from 'chai';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { desiredDeployment, desiredPdb, desiredService, storeSettingsHash, workerEnv } from './desired.ts';
import { STORE_HASH_ANNOTATION } from './names.ts';

function pool(spec: Parameters<typeof newSessionPool>[2] = {}): SessionPool {
  const p = newSessionPool('web', 'ns1', {
    replicas: 2,
    worker: { image: 'img:1' },
    store: { endpoints: ['redis-0:6379', 'redis-1:6379'] },
    ...spec,
  });
  p.metadata.uid = 'uid-1';
  return p;
}

function env(p: SessionPool): Record<string, unknown> {
  const container = desiredDeployment(p, 1).spec?.template.spec?.containers[0];
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
}

describe('pool/desired', () => {
  it('names the children and gives them a controller owner reference', () => {
    const p = pool();
    const dep = desiredDeployment(p, 3);
    expect(dep.metadata?.name).to.equal('web-workers');
    expect(dep.metadata?.namespace).to.equal('ns1');
    expect(dep.metadata?.ownerReferences).to.deep.equal([
      { apiVersion: 'dspex.io/v1alpha1', kind: 'SessionPool', name: 'web', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
    ]);
    expect(desiredService(p).metadata?.name).to.equal('web');
    expect(desiredPdb(p).metadata?.name).to.equal('web-workers');
    expect(dep.spec?.replicas).to.equal(3);
  });

  it('labels pods with the harness/selector contract; the selector is minimal and stable', () => {
    const dep = desiredDeployment(pool({ template: { metadata: { labels: { team: 'a', 'dspex.io/pool': 'evil' } } } }), 1);
    expect(dep.spec?.selector.matchLabels).to.deep.equal({ 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'web' });
    expect(dep.spec?.template.metadata?.labels).to.deep.equal({
      team: 'a',
      'app.kubernetes.io/name': 'session-worker',
      'app.kubernetes.io/component': 'session-worker',
      'app.kubernetes.io/instance': 'web',
      'app.kubernetes.io/managed-by': 'session-pool-operator',
      'dspex.io/pool': 'web',
    });
  });

  it('passes the store settings to the worker through its env contract', () => {
    const e = env(
      pool({
        sessions: { ttlSeconds: 100, anonymousTtlSeconds: 10, maxSessionBytes: 2048, idleSeconds: 42 },
        sessionMode: 'Centralized',
        store: { endpoints: ['r:1'], keyPrefix: 'kp', durability: 'replica', allowDegradedMode: true },
      }),
    );
    expect(e).to.include({
      SPO_POOL: 'web',
      SPO_POOL_NAMESPACE: 'ns1',
      SPO_PORT: '8080',
      SPO_REDIS_NODES: 'r:1',
      SPO_KEY_PREFIX: 'kp',
      SPO_SESSION_TTL_SECONDS: '100',
      SPO_ANON_TTL_SECONDS: '10',
      SPO_MAX_SESSION_BYTES: '2048',
      SPO_IDLE_SECONDS: '42',
      SPO_DURABILITY: 'replica',
      SPO_SESSION_MODE: 'Centralized',
      SPO_ALLOW_DEGRADED: 'true',
      SPO_DRAIN_DEADLINE_SECONDS: '300',
      SPO_REDIS_TLS: 'false',
    });
    expect(e.SPO_WORKER_NAME).to.deep.equal({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(e).to.not.have.property('SPO_REDIS_PASSWORD');
  });

  it("gives every worker the pool's admin token from the pool's Secret, whatever the template says", () => {
    const p = pool({
      template: { spec: { containers: [{ name: 'worker', env: [{ name: 'SPO_ADMIN_TOKEN', value: 'from-the-template-0000' }] }] } },
    });
    const e = env(p);
    expect(e.SPO_ADMIN_TOKEN).to.deep.equal({ secretKeyRef: { name: 'web-admin-token', key: 'token' } });
  });

  it('reads credentials only from the Secret (secretKeyRef), username optional', () => {
    const withUser = env(
      pool({ store: { endpoints: ['r:1'], credentialsSecretRef: { name: 'creds', usernameKey: 'user', passwordKey: 'pw' } } }),
    );
    expect(withUser.SPO_REDIS_USERNAME).to.deep.equal({ secretKeyRef: { name: 'creds', key: 'user' } });
    expect(withUser.SPO_REDIS_PASSWORD).to.deep.equal({ secretKeyRef: { name: 'creds', key: 'pw' } });
    const noUser = env(pool({ store: { endpoints: ['r:1'], credentialsSecretRef: { name: 'creds' } } }));
    expect(noUser).to.not.have.property('SPO_REDIS_USERNAME');
    expect(noUser.SPO_REDIS_PASSWORD).to.deep.equal({ secretKeyRef: { name: 'creds', key: 'password' } });
  });

  it('mounts the TLS CA from its Secret', () => {
    const p = pool({ store: { endpoints: ['r:1'], tls: { enabled: true, caSecretRef: { name: 'ca', key: 'ca.pem' } } } });
    const spec = desiredDeployment(p, 1).spec?.template.spec;
    expect(spec?.volumes?.find((v) => v.name === 'redis-ca')?.secret?.secretName).to.equal('ca');
    expect(spec?.containers[0]?.volumeMounts?.[0]?.mountPath).to.equal('/etc/spo/redis-ca');
    expect(env(p)).to.include({ SPO_REDIS_TLS: 'true', SPO_REDIS_TLS_CA_FILE: '/etc/spo/redis-ca/ca.crt' });
  });

  it('merges the template: its worker container (spec.worker wins for image and port), extra containers, pod settings', () => {
    const p = pool({
      worker: { image: 'img:2', port: 9000, resources: { requests: { cpu: '100m' } } },
      template: {
        spec: {
          nodeSelector: { disk: 'ssd' },
          containers: [
            {
              name: 'worker',
              image: 'ignored',
              env: [
                { name: 'EXTRA', value: '1' },
                { name: 'SPO_POOL', value: 'hijack' },
                { name: 'SPO_POOL_NAMESPACE', value: 'other-tenant' },
              ],
            },
            { name: 'sidecar', image: 'side:1' },
          ],
        },
      },
    });
    const spec = desiredDeployment(p, 1).spec?.template.spec;
    expect(spec?.nodeSelector).to.deep.equal({ disk: 'ssd' });
    expect(spec?.containers.map((c) => c.name)).to.deep.equal(['worker', 'sidecar']);
    const worker = spec?.containers[0];
    expect(worker?.image).to.equal('img:2');
    expect(worker?.ports?.[0]).to.include({ name: 'http', containerPort: 9000 });
    expect(worker?.resources).to.deep.equal({ requests: { cpu: '100m' } });
    const e = Object.fromEntries((worker?.env ?? []).map((x) => [x.name, x.value]));
    expect(e.EXTRA).to.equal('1');
    expect(e.SPO_POOL).to.equal('web');
    expect(e.SPO_POOL_NAMESPACE, 'the template cannot move the pool into another identity').to.equal('ns1');
    expect(e.SPO_PORT).to.equal('9000');
    expect(worker?.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: 'http' });
    expect(worker?.command, "the image's entrypoint (tini -- node) runs it").to.equal(undefined);
    expect(worker?.args).to.deep.equal(['operator/cmd/worker.ts']);
  });

  it('gives the kubelet at least the drain deadline (plus a margin) before it kills a worker', () => {
    expect(
      desiredDeployment(pool({ maintenance: { drainDeadlineSeconds: 120 } }), 1).spec?.template.spec?.terminationGracePeriodSeconds,
    ).to.equal(135);
    expect(
      desiredDeployment(pool({ template: { spec: { containers: [], terminationGracePeriodSeconds: 900 } } }), 1).spec?.template.spec
        ?.terminationGracePeriodSeconds,
    ).to.equal(900);
    // The worker accepts at most 3600 s of drain.
    expect(env(pool({ maintenance: { drainDeadlineSeconds: 7200 } })).SPO_DRAIN_DEADLINE_SECONDS).to.equal('3600');
  });

  it('changes the store hash (rolling the workers) on a store change only', () => {
    const base = storeSettingsHash(pool());
    expect(storeSettingsHash(pool())).to.equal(base);
    expect(storeSettingsHash(pool({ store: { endpoints: ['redis-1:6379', 'redis-0:6379'] } }))).to.equal(base);
    expect(storeSettingsHash(pool({ store: { endpoints: ['redis-0:6379'] } }))).to.not.equal(base);
    expect(storeSettingsHash(pool({ sessions: { ttlSeconds: 10, anonymousTtlSeconds: 5 } }))).to.not.equal(base);
    expect(storeSettingsHash(pool({ replicas: 7 }))).to.equal(base);
    expect(desiredDeployment(pool(), 1).spec?.template.metadata?.annotations?.[STORE_HASH_ANNOTATION]).to.equal(base);
  });

  it('builds a PDB that never blocks a drain forever', () => {
    const pdb = desiredPdb(pool({ replicas: 1 }));
    expect(pdb.spec).to.deep.equal({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: { matchLabels: { 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'web' } },
    });
    expect(pdb.spec).to.not.have.property('minAvailable');
  });

  it('builds a ClusterIP Service on the worker port', () => {
    const svc = desiredService(pool({ worker: { image: 'i', port: 9000 } }));
    expect(svc.spec?.ports).to.deep.equal([{ name: 'http', port: 9000, targetPort: 'http', protocol: 'TCP' }]);
    expect(svc.spec?.selector).to.deep.equal({ 'app.kubernetes.io/component': 'session-worker', 'dspex.io/pool': 'web' });
  });

  it('has no server-owned fields (apply shape)', () => {
    const dep = desiredDeployment(pool(), 1) as unknown as Record<string, unknown>;
    expect(dep).to.not.have.property('status');
    expect(dep.metadata).to.not.have.any.keys('resourceVersion', 'uid', 'managedFields');
    expect(workerEnv(pool()).every((e) => e.name.length > 0)).to.equal(true);
  });
});
