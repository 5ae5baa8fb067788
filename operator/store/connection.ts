// How a client reaches the Redis Cluster: ACL user, password and TLS. The one place that turns
// these into ioredis options, used by the workers (material read from mounted files) and by the
// operator (material read from the pool's Secrets). See docs/store.md, "TLS" and "ACL users".
import type { ConnectionOptions } from 'node:tls';
import type { ClusterOptions } from 'ioredis';
import { InvalidArgumentError } from './errors.ts';

export interface RedisTlsSettings {
  /** PEM CA bundle the server certificates are verified against. Unset: the system's CAs. */
  ca?: string;
  /** PEM client certificate (mutual TLS); with `key`. */
  cert?: string;
  /** PEM private key of the client certificate. */
  key?: string;
  /** Name the server certificates are checked against, and sent as SNI. Unset: the address each
   *  node is reached at (a Redis Cluster announces IPs, so certificates then need IP SANs). */
  serverName?: string;
  /** Accept any server certificate. Only when explicitly asked (spec.store.tls.insecureSkipVerify). */
  insecureSkipVerify?: boolean;
}

export interface RedisConnectionSettings {
  /** Redis ACL user; unset: the default user. */
  username?: string;
  password?: string;
  /** Unset: plain TCP. */
  tls?: RedisTlsSettings;
}

const IP_ADDRESS = /^(\d{1,3}(\.\d{1,3}){3}|\[?[0-9a-fA-F:]*:[0-9a-fA-F:.]*\]?)$/;
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/;

/** Why a server name cannot be used (undefined when it can): a DNS name, never an IP (RFC 6066 SNI). */
export function serverNameProblem(name: string): string | undefined {
  if (IP_ADDRESS.test(name)) return `'${name}' is an IP address; TLS server names are DNS names (RFC 6066)`;
  if (!DNS_NAME.test(name)) return `'${name}' is not a DNS name`;
  return undefined;
}

/** The node's TLS options: CA, optional client certificate, server name, verification. */
export function tlsOptions(tls: RedisTlsSettings): ConnectionOptions {
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new InvalidArgumentError('a TLS client certificate needs both the certificate and its key');
  if (tls.serverName !== undefined) {
    const problem = serverNameProblem(tls.serverName);
    if (problem) throw new InvalidArgumentError(`TLS server name ${problem}`);
  }
  const options: ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: tls.insecureSkipVerify !== true };
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  // Node checks the certificate against `servername` when set, else against the host it dialled
  // (for a cluster node, the IP the cluster announced). One name for every node: all of them present
  // a certificate for it.
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  return options;
}

/** The per-node ioredis options (`redisOptions`) for these settings; merged over the store's defaults. */
export function redisConnectionOptions(settings: RedisConnectionSettings): NonNullable<ClusterOptions['redisOptions']> {
  const options: NonNullable<ClusterOptions['redisOptions']> = {};
  if (settings.username !== undefined) options.username = settings.username;
  if (settings.password !== undefined) options.password = settings.password;
  if (settings.tls) options.tls = tlsOptions(settings.tls);
  return options;
}
