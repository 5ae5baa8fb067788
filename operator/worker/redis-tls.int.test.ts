// TLS to Redis end to end, on the TLS-only Redis Cluster of the integration tier (no plain port,
// TLS on the cluster bus and replication, client certificates required; certificates made with
// openssl at the start of the run, the nodes' certificate naming only a DNS name while the
// cluster announces 127.0.0.1). The operator's path reads the CA and client certificate from
// real Secrets on the apiserver; a real worker process reads them from files. A wrong CA, a
// missing server name and a missing client certificate are each refused.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { connect as connectTls } from 'node:tls';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { redisTlsTestEnv } from '../../e2e/harness/test-env.ts';
import { newSessionPool } from '../api/index.ts';
import { createNamespace, deleteNamespace, testKubeConfig } from '../kube/test-support.ts';
import { StoreClients } from '../controller/pool/store-clients.ts';
import { tlsOptions } from '../store/connection.ts';
import { createSessionStore, type RedisTlsSettings } from '../store/index.ts';
import { WorkerClient } from './client.ts';
import { poolIdentity } from '../store/keys.ts';
import { WORKER_TEST_NAMESPACE, startWorkerProcess, type WorkerProcess } from './testing/worker-process.ts';

const run = Date.now().toString(36);

/** Tries one write with these TLS settings through the store: true when it was acknowledged (bounded wait). */
async function tryWrite(tls: RedisTlsSettings, endpoints: string[]): Promise<boolean> {
  const store = createSessionStore({
    nodes: endpoints,
    keyPrefix: `tls-probe-${run}`,
    connection: { tls },
    degraded: { enabled: false },
    retry: { maxAttempts: 1, maxElapsedMs: 500 },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const write = store.create({ pool: 'probe', data: { x: 1 } }).then(() => true);
    const bounded = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5_000)));
    return await Promise.race([write.catch(() => false), bounded]);
  } finally {
    clearTimeout(timer);
    await store.close().catch(() => undefined);
  }
}

/** The TLS handshake with one node under the options the store builds: 'ok' or Node's error code. */
function handshake(tls: RedisTlsSettings, endpoint: string): Promise<string> {
  const [host, port] = endpoint.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = connectTls({ host, port: Number(port), ...tlsOptions(tls) }, () => {
      socket.destroy();
      resolve('ok');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('TLS to a TLS-only Redis Cluster', function () {
  const env = () => redisTlsTestEnv();
  const pki = () => {
    const tls = env().state.tls;
    if (!tls) throw new Error('the TLS test cluster has no certificates in its state');
    return tls;
  };
  const pem = (file: string) => readFileSync(file, 'utf8');
  const workers: WorkerProcess[] = [];
  let namespace: string | undefined;
  let kc: KubeConfig | undefined;

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  after(async () => {
    if (kc && namespace) await deleteNamespace(kc, namespace);
  });

  it('the operator reads the CA and client certificate from Secrets and uses the pool through TLS', async () => {
    kc = testKubeConfig();
    namespace = await createNamespace(kc, 'tls');
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace, body: { metadata: { name: 'redis-ca' }, stringData: { 'ca.crt': pem(pki().caCert) } } });
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: 'redis-client' },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': pem(pki().clientCert), 'tls.key': pem(pki().clientKey) },
      },
    });
    const pool = newSessionPool('tls-pool', namespace, {
      worker: { image: 'unused' },
      store: {
        endpoints: env().endpoints,
        keyPrefix: `tls-op-${run}`,
        tls: {
          enabled: true,
          caSecretRef: { name: 'redis-ca', key: 'ca.crt' },
          clientCertSecretRef: { name: 'redis-client', certKey: 'tls.crt', keyKey: 'tls.key' },
          serverName: pki().serverName,
        },
      },
    });
    const stores = new StoreClients({ readSecret: (ns, name) => core.readNamespacedSecret({ namespace: ns, name }) });
    try {
      const store = await stores.forPool(`${namespace}/tls-pool`, pool);
      const created = await stores.call('create', store.create({ pool: 'tls-pool', data: { over: 'tls' } }));
      const read = await stores.call('get', store.get(created.id, { pool: 'tls-pool' }));
      expect(read?.data).to.deep.equal({ over: 'tls' });
    } finally {
      await stores.closeAll();
    }
  });

  it('a worker process reads its CA, client certificate and server name from files and serves sessions through TLS', async () => {
    const pool = `tls-wk-${run}`;
    const worker = await startWorkerProcess({
      pool,
      name: 'tls-w1',
      env: {
        SPO_REDIS_NODES: env().endpoints.join(','),
        SPO_KEY_PREFIX: pool,
        SPO_REDIS_TLS: 'true',
        SPO_REDIS_TLS_CA_FILE: pki().caCert,
        SPO_REDIS_TLS_CERT_FILE: pki().clientCert,
        SPO_REDIS_TLS_KEY_FILE: pki().clientKey,
        SPO_REDIS_TLS_SERVER_NAME: pki().serverName,
      },
    });
    workers.push(worker);
    const client = new WorkerClient({ endpoints: [worker.base] });
    const session = await client.createSession({ greeting: 'hello' });
    expect((await client.execute(session.id, 'incr', { key: 'n' })).result).to.deep.include({ value: 1 });
    expect((await client.execute(session.id, 'incr', { key: 'n' })).result).to.deep.include({ value: 2 });
    const read = await client.getSession(session.id);
    expect(read.data).to.deep.include({ greeting: 'hello' });
    expect(read.data).to.deep.include({ vars: { n: 2 } });
    // The session is in the TLS cluster, as the operator's client sees it.
    const store = createSessionStore({
      nodes: env().endpoints,
      keyPrefix: pool,
      connection: {
        tls: { ca: pem(pki().caCert), cert: pem(pki().clientCert), key: pem(pki().clientKey), serverName: pki().serverName },
      },
      degraded: { enabled: false },
    });
    try {
      expect((await store.get(session.id, { pool: poolIdentity(WORKER_TEST_NAMESPACE, pool) }))?.version).to.equal(read.version);
    } finally {
      await store.close();
    }
    await client.deleteSession(session.id);
  });

  it('a worker trusting another CA does not become ready: the store is unreachable', async () => {
    const pool = `tls-bad-${run}`;
    const worker = await startWorkerProcess({
      pool,
      name: 'tls-wrong-ca',
      waitReady: false,
      env: {
        SPO_REDIS_NODES: env().endpoints.join(','),
        SPO_KEY_PREFIX: pool,
        SPO_REDIS_TLS: 'true',
        SPO_REDIS_TLS_CA_FILE: pki().otherCaCert,
        SPO_REDIS_TLS_CERT_FILE: pki().clientCert,
        SPO_REDIS_TLS_KEY_FILE: pki().clientKey,
        SPO_REDIS_TLS_SERVER_NAME: pki().serverName,
      },
    });
    workers.push(worker);
    // Not ready once its first heartbeat has failed (the reason then carries the heartbeat's error).
    let seen = { status: 0, reason: '' };
    for (let i = 0; i < 200 && !seen.reason.startsWith('session store unreachable:'); i++) {
      seen = await worker.readiness().catch(() => ({ status: 0, reason: '' }));
      if (!seen.reason.startsWith('session store unreachable:')) await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.status).to.equal(503);
    expect(seen.reason).to.match(/^session store unreachable: /);
  });

  it('refuses a server whose certificate is signed by another CA', async () => {
    const tls = { ca: pem(pki().otherCaCert), cert: pem(pki().clientCert), key: pem(pki().clientKey), serverName: pki().serverName };
    expect(await handshake(tls, env().endpoints[0]!)).to.match(/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    expect(await tryWrite(tls, env().endpoints)).to.equal(false);
  });

  it('checks the server name: the nodes are reached at 127.0.0.1, a name their certificate does not hold', async () => {
    const trusted = { ca: pem(pki().caCert), cert: pem(pki().clientCert), key: pem(pki().clientKey) };
    expect(await handshake({ ...trusted, serverName: pki().serverName }, env().endpoints[0]!)).to.equal('ok');
    expect(await handshake(trusted, env().endpoints[0]!)).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await handshake({ ...trusted, serverName: 'other.spo.test' }, env().endpoints[0]!)).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await tryWrite(trusted, env().endpoints)).to.equal(false);
    expect(await tryWrite({ ...trusted, serverName: 'other.spo.test' }, env().endpoints)).to.equal(false);
  });

  it('the nodes require a client certificate; without one nothing is written', async () => {
    expect(await tryWrite({ ca: pem(pki().caCert), serverName: pki().serverName }, env().endpoints)).to.equal(false);
  });

  it('insecureSkipVerify, and only it, accepts a certificate it cannot verify', async () => {
    const tls = { ca: pem(pki().otherCaCert), cert: pem(pki().clientCert), key: pem(pki().clientKey) };
    expect(await tryWrite(tls, env().endpoints)).to.equal(false);
    expect(await tryWrite({ ...tls, insecureSkipVerify: true }, env().endpoints)).to.equal(true);
  });
});
