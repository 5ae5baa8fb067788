import { expect } from 'chai';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { desiredDeployment } from './desired.ts';
import { TMP_VOLUME } from './pod-security.ts';

function pool(tls: Record<string, unknown>): SessionPool {
  const p = newSessionPool('web', 'ns1', { worker: { image: 'img:1' }, store: { endpoints: ['redis-0:6379'], tls } });
  p.metadata.uid = 'uid-1';
  return p;
}

/** The pod without the hardening's writable /tmp (pod-security.ts), which every pod has. */
function podOf(p: SessionPool) {
  const pod = desiredDeployment(p, 1).spec?.template.spec;
  const spec = pod && { ...pod, volumes: pod.volumes?.filter((v) => v.name !== TMP_VOLUME) };
  const worker = pod?.containers[0];
  const container = worker && { ...worker, volumeMounts: worker.volumeMounts?.filter((m) => m.name !== TMP_VOLUME) };
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
  return { spec, container, env };
}

describe('pool/desired-tls', () => {
  it('without TLS: SPO_REDIS_TLS false and no TLS variable, volume or mount', () => {
    const { spec, container, env } = podOf(pool({}));
    expect(env.SPO_REDIS_TLS).to.equal('false');
    expect(Object.keys(env).filter((k) => k.startsWith('SPO_REDIS_TLS_'))).to.deep.equal([]);
    expect(spec?.volumes ?? []).to.deep.equal([]);
    expect(container?.volumeMounts ?? []).to.deep.equal([]);
  });

  it('mounts the CA and the client certificate Secrets read-only under fixed file names, and names them in the environment', () => {
    const { spec, container, env } = podOf(
      pool({
        enabled: true,
        caSecretRef: { name: 'redis-ca', key: 'root.pem' },
        clientCertSecretRef: { name: 'redis-client', certKey: 'client.pem', keyKey: 'client-key.pem' },
        serverName: 'redis.data.svc',
      }),
    );
    expect(spec?.volumes).to.deep.equal([
      { name: 'redis-ca', secret: { secretName: 'redis-ca', items: [{ key: 'root.pem', path: 'ca.crt' }], defaultMode: 0o444 } },
      {
        name: 'redis-client-cert',
        secret: {
          secretName: 'redis-client',
          items: [
            { key: 'client.pem', path: 'tls.crt' },
            { key: 'client-key.pem', path: 'tls.key' },
          ],
          defaultMode: 0o444,
        },
      },
    ]);
    expect(container?.volumeMounts).to.deep.equal([
      { name: 'redis-ca', mountPath: '/etc/spo/redis-ca', readOnly: true },
      { name: 'redis-client-cert', mountPath: '/etc/spo/redis-client', readOnly: true },
    ]);
    expect(env).to.include({
      SPO_REDIS_TLS: 'true',
      SPO_REDIS_TLS_CA_FILE: '/etc/spo/redis-ca/ca.crt',
      SPO_REDIS_TLS_CERT_FILE: '/etc/spo/redis-client/tls.crt',
      SPO_REDIS_TLS_KEY_FILE: '/etc/spo/redis-client/tls.key',
      SPO_REDIS_TLS_SERVER_NAME: 'redis.data.svc',
    });
    expect(env).not.to.have.property('SPO_REDIS_TLS_INSECURE_SKIP_VERIFY');
  });

  it('the client certificate keys default to those of a kubernetes.io/tls Secret', () => {
    const { spec } = podOf(pool({ enabled: true, clientCertSecretRef: { name: 'c' } }));
    expect(spec?.volumes?.[0]?.secret?.items).to.deep.equal([
      { key: 'tls.crt', path: 'tls.crt' },
      { key: 'tls.key', path: 'tls.key' },
    ]);
  });

  it('skips verification only when asked', () => {
    expect(podOf(pool({ enabled: true, insecureSkipVerify: true })).env).to.include({ SPO_REDIS_TLS_INSECURE_SKIP_VERIFY: 'true' });
  });

  it('a volume of the same name in the pod template wins', () => {
    const p = pool({ enabled: true, caSecretRef: { name: 'redis-ca', key: 'ca.crt' } });
    p.spec.template = { spec: { containers: [], volumes: [{ name: 'redis-ca', configMap: { name: 'bundle' } }] } };
    const volumes = podOf(p).spec?.volumes ?? [];
    expect(volumes).to.deep.equal([{ name: 'redis-ca', configMap: { name: 'bundle' } }]);
  });
});
