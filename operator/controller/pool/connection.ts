// The pool's store connection as the operator makes it: the ACL user and password, the CA and the
// client certificate read from the Secrets spec.store names (through the API, only by name), the
// server name and verification from the spec. The workers get the same material as files
// (desired.ts mounts the Secrets); both sides build their ioredis options in store/connection.ts.
import type { V1Secret } from '@kubernetes/client-node';
import type { SessionPool } from '../../api/index.ts';
import type { RedisConnectionSettings, RedisTlsSettings } from '../../store/index.ts';

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** Reads a Secret of the pool's namespace by name; throws CredentialsError when it does not exist. */
export type SecretReader = (namespace: string, name: string) => Promise<V1Secret>;

export function secretValue(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

/** ACL user, password and TLS of the pool's store, with every Secret value resolved. */
export async function poolConnection(pool: SessionPool, readSecret: SecretReader): Promise<RedisConnectionSettings> {
  const namespace = pool.metadata.namespace ?? 'default';
  const { store } = pool.spec;
  const value = async (name: string, key: string, field: string): Promise<string> => {
    const found = secretValue(await readSecret(namespace, name), key);
    if (found === undefined) throw new CredentialsError(`Secret ${namespace}/${name} has no key ${key} (${field})`);
    return found;
  };
  const connection: RedisConnectionSettings = {};
  const creds = store.credentialsSecretRef;
  if (creds) {
    connection.password = await value(creds.name, creds.passwordKey, 'spec.store.credentialsSecretRef.passwordKey');
    if (creds.usernameKey) connection.username = await value(creds.name, creds.usernameKey, 'spec.store.credentialsSecretRef.usernameKey');
  }
  if (!store.tls.enabled) return connection;
  const tls: RedisTlsSettings = { insecureSkipVerify: store.tls.insecureSkipVerify };
  if (store.tls.caSecretRef) tls.ca = await value(store.tls.caSecretRef.name, store.tls.caSecretRef.key, 'spec.store.tls.caSecretRef');
  const client = store.tls.clientCertSecretRef;
  if (client) {
    tls.cert = await value(client.name, client.certKey, 'spec.store.tls.clientCertSecretRef.certKey');
    tls.key = await value(client.name, client.keyKey, 'spec.store.tls.clientCertSecretRef.keyKey');
  }
  if (store.tls.serverName) tls.serverName = store.tls.serverName;
  connection.tls = tls;
  return connection;
}
