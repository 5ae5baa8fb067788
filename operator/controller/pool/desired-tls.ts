// The worker side of spec.store.tls, pure: the Secrets holding the CA and the client certificate
// mounted read-only as files, and the SPO_REDIS_TLS_* variables naming them (the contract of
// operator/worker/config.ts). Only the keys named are projected, never the whole Secret.
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { SessionPool } from '../../api/index.ts';

export const TLS_CA_VOLUME = 'redis-ca';
export const TLS_CA_MOUNT = '/etc/spo/redis-ca';
export const TLS_CLIENT_VOLUME = 'redis-client-cert';
export const TLS_CLIENT_MOUNT = '/etc/spo/redis-client';
// Fixed file names inside the mounts: the Secret's key names need not be valid file names.
const CA_FILE = 'ca.crt';
const CERT_FILE = 'tls.crt';
const KEY_FILE = 'tls.key';

export function tlsEnv(pool: SessionPool): V1EnvVar[] {
  const tls = pool.spec.store.tls;
  const env: V1EnvVar[] = [{ name: 'SPO_REDIS_TLS', value: String(tls.enabled) }];
  if (!tls.enabled) return env;
  if (tls.caSecretRef) env.push({ name: 'SPO_REDIS_TLS_CA_FILE', value: `${TLS_CA_MOUNT}/${CA_FILE}` });
  if (tls.clientCertSecretRef)
    env.push(
      { name: 'SPO_REDIS_TLS_CERT_FILE', value: `${TLS_CLIENT_MOUNT}/${CERT_FILE}` },
      { name: 'SPO_REDIS_TLS_KEY_FILE', value: `${TLS_CLIENT_MOUNT}/${KEY_FILE}` },
    );
  if (tls.serverName) env.push({ name: 'SPO_REDIS_TLS_SERVER_NAME', value: tls.serverName });
  if (tls.insecureSkipVerify) env.push({ name: 'SPO_REDIS_TLS_INSECURE_SKIP_VERIFY', value: 'true' });
  return env;
}

/** Volumes for the TLS Secrets; a volume of the same name in the pod template wins. */
export function tlsVolumes(pool: SessionPool, existing: readonly V1Volume[]): V1Volume[] {
  const tls = pool.spec.store.tls;
  const volumes: V1Volume[] = [];
  const taken = (name: string) => existing.some((v) => v.name === name);
  if (!tls.enabled) return volumes;
  if (tls.caSecretRef && !taken(TLS_CA_VOLUME))
    volumes.push({
      name: TLS_CA_VOLUME,
      secret: { secretName: tls.caSecretRef.name, items: [{ key: tls.caSecretRef.key, path: CA_FILE }], defaultMode: 0o444 },
    });
  const client = tls.clientCertSecretRef;
  if (client && !taken(TLS_CLIENT_VOLUME))
    volumes.push({
      name: TLS_CLIENT_VOLUME,
      secret: {
        secretName: client.name,
        items: [
          { key: client.certKey, path: CERT_FILE },
          { key: client.keyKey, path: KEY_FILE },
        ],
        // Read-only, and readable whatever uid the worker runs as (no fsGroup is assumed).
        defaultMode: 0o444,
      },
    });
  return volumes;
}

/** Read-only mounts of the TLS volumes in the worker container; a mount of the same name wins. */
export function tlsMounts(pool: SessionPool, existing: readonly V1VolumeMount[]): V1VolumeMount[] {
  const tls = pool.spec.store.tls;
  const mounts: V1VolumeMount[] = [];
  const taken = (name: string) => existing.some((m) => m.name === name);
  if (!tls.enabled) return mounts;
  if (tls.caSecretRef && !taken(TLS_CA_VOLUME)) mounts.push({ name: TLS_CA_VOLUME, mountPath: TLS_CA_MOUNT, readOnly: true });
  if (tls.clientCertSecretRef && !taken(TLS_CLIENT_VOLUME))
    mounts.push({ name: TLS_CLIENT_VOLUME, mountPath: TLS_CLIENT_MOUNT, readOnly: true });
  return mounts;
}
