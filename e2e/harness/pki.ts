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
