// Certificates and keys for the local apiserver, made with openssl: our own CA, so the
// kubeconfig carries certificate-authority-data and every client verifies TLS.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './processes.ts';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  serviceAccountKey: string;
  tokenFile: string;
  adminToken: string;
}

export async function createPki(dir: string): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir });
  await openssl(['genrsa', '-out', p('ca.key'), '2048']);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-nodes',
    '-key',
    p('ca.key'),
    '-subj',
    '/CN=session-pool-operator-local-ca',
    '-days',
    '30',
    '-out',
    p('ca.crt'),
  ]);
  await openssl(['genrsa', '-out', p('apiserver.key'), '2048']);
  writeFileSync(
    p('apiserver.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
      '',
    ].join('\n'),
  );
  await openssl(['req', '-new', '-key', p('apiserver.key'), '-subj', '/CN=kube-apiserver', '-out', p('apiserver.csr')]);
  await openssl([
    'x509',
    '-req',
    '-in',
    p('apiserver.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    p('apiserver.ext'),
    '-out',
    p('apiserver.crt'),
  ]);
  await openssl(['genrsa', '-out', p('sa.key'), '2048']);
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(p('tokens.csv'), `${adminToken},admin,admin,system:masters\n`, { mode: 0o600 });
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    servingCert: p('apiserver.crt'),
    servingKey: p('apiserver.key'),
    serviceAccountKey: p('sa.key'),
    tokenFile: p('tokens.csv'),
    adminToken,
  };
}

export function kubeconfigYaml(server: string, pki: Pki, user = 'admin'): string {
  const ca = readFileSync(pki.caCert).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: ${user}
  user:
    token: ${pki.adminToken}
contexts:
- name: local
  context:
    cluster: local
    user: ${user}
    namespace: default
current-context: local
`;
}

/** Certificates for a TLS-only Redis Cluster and its clients (see redis-cluster.ts, `tls`). */
export interface RedisTlsPki {
  /** The CA every node and client certificate is signed by. */
  caCert: string;
  /** The nodes' certificate (server and, towards each other on the bus, client). Its only name is
   *  `serverName`: no IP SAN, as with a cluster whose nodes announce IPs a certificate cannot know. */
  nodeCert: string;
  nodeKey: string;
  serverName: string;
  /** A client certificate for mutual TLS. */
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: a client trusting only it must refuse the nodes. */
  otherCaCert: string;
}

async function newCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { cwd: dir });
  await run('openssl', ['req', '-x509', '-new', '-nodes', '-key', key, '-subj', `/CN=${name}`, '-days', '30', '-out', cert], { cwd: dir });
  return { cert, key };
}

async function issue(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  extensions: string[],
): Promise<{ cert: string; key: string }> {
  const p = (suffix: string) => path.join(dir, `${name}.${suffix}`);
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('key')], { cwd: dir });
  writeFileSync(p('ext'), ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,keyEncipherment', ...extensions, ''].join('\n'));
  await run('openssl', ['req', '-new', '-key', p('key'), '-subj', `/CN=${name}`, '-out', p('csr')], { cwd: dir });
  await run(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      p('csr'),
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      p('ext'),
      '-out',
      p('crt'),
    ],
    { cwd: dir },
  );
  return { cert: p('crt'), key: p('key') };
}

export async function createRedisTlsPki(dir: string, serverName = 'redis-cluster.spo.test'): Promise<RedisTlsPki> {
  mkdirSync(dir, { recursive: true });
  const ca = await newCa(dir, 'redis-ca');
  const node = await issue(dir, ca, 'redis-node', ['extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=DNS:${serverName}`]);
  const client = await issue(dir, ca, 'redis-client', ['extendedKeyUsage=clientAuth']);
  const other = await newCa(dir, 'other-ca');
  return {
    caCert: ca.cert,
    nodeCert: node.cert,
    nodeKey: node.key,
    serverName,
    clientCert: client.cert,
    clientKey: client.key,
    otherCaCert: other.cert,
  };
}
