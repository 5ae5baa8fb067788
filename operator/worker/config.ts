// The worker's configuration, read from the environment. Every bad value is reported at once,
// with the variable's name and what was expected, before anything starts.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { MIN_ADMIN_TOKEN_LENGTH } from './admin-auth.ts';
import { SESSION_MODES, type SessionMode } from './backends.ts';
import { serverNameProblem, type RedisConnectionSettings } from '../store/connection.ts';
import type { DurabilityLevel } from '../store/types.ts';
import { poolIdentity } from '../store/keys.ts';

/** TLS towards Redis as the environment names it: files (mounted from Secrets) read at start. */
export interface WorkerTlsConfig {
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  serverName: string | undefined;
  insecureSkipVerify: boolean;
}

export interface WorkerConfig {
  /** The pool identity every store key and registration of this worker uses: `<namespace>/<name>`. */
  pool: string;
  workerName: string;
  host: string;
  port: number;
  /** host:port registered in the store for this worker's API. */
  advertiseEndpoint: string;
  redisNodes: { host: string; port: number }[];
  redisUsername: string | undefined;
  redisPassword: string | undefined;
  /** Unset: plain TCP (SPO_REDIS_TLS false). */
  redisTls: WorkerTlsConfig | undefined;
  keyPrefix: string | undefined;
  sessionTtlSeconds: number;
  anonTtlSeconds: number;
  maxSessionBytes: number;
  /** Largest accepted request body: the session limit plus room for the envelope. */
  maxBodyBytes: number;
  durability: DurabilityLevel;
  sessionMode: SessionMode;
  allowDegraded: boolean;
  drainDeadlineSeconds: number;
  /**
   * After SIGTERM the listener stays open at least this long (answering 503 WORKER_DRAINING to
   * session routes): a deleted pod leaves the Service's endpoints asynchronously, and kube-proxy
   * on every node may still send it new connections for a moment. Closed sooner, those connections
   * meet a dead address and hang until the client's timeout.
   */
  shutdownLingerSeconds: number;
  heartbeatSeconds: number;
  /** An activation idle this long releases its lease (SPO_IDLE_SECONDS, the pool's spec.idleSeconds; docs/activation.md). */
  idleSeconds: number;
  /** /admin/* requires `Authorization: Bearer <token>`; without a token the admin routes are refused. */
  adminToken: string | undefined;
  /** Port of the handler container on 127.0.0.1 (docs/handler-contract.md); unset: built-in handlers. */
  handlerPort: number | undefined;
  /** Deadline of one handler call. */
  handlerTimeoutMs: number;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid worker configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function parseConfig(env: NodeJS.ProcessEnv = process.env, defaultHostname: string = hostname()): WorkerConfig {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) {
      problems.push(`${name}='${raw}' is not an integer`);
      return fallback;
    }
    const value = Number(raw);
    if (value < min || value > max) problems.push(`${name}=${value} is out of range [${min}, ${max}]`);
    return value;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name}='${env[name]}' is not a boolean (true/false, 1/0, yes/no, on/off)`);
    return fallback;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const match = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
    if (!match) problems.push(`${name}='${raw}' is not one of ${allowed.join(', ')}`);
    return match ?? fallback;
  };

  const pool = text('SPO_POOL') ?? '';
  if (!pool) problems.push('SPO_POOL is required (the SessionPool this worker belongs to)');
  else if (!DNS_NAME.test(pool)) problems.push(`SPO_POOL='${pool}' is not a DNS-1123 name (lowercase letters, digits, '-' and '.')`);
  const poolNamespace = text('SPO_POOL_NAMESPACE') ?? '';
  if (!poolNamespace)
    problems.push("SPO_POOL_NAMESPACE is required (the SessionPool's namespace: part of the pool's identity in the store)");
  else if (!DNS_LABEL.test(poolNamespace)) problems.push(`SPO_POOL_NAMESPACE='${poolNamespace}' is not a DNS-1123 label`);

  const workerName = text('SPO_WORKER_NAME') ?? text('POD_NAME') ?? defaultHostname;
  if (!/^[A-Za-z0-9][-A-Za-z0-9_.]{0,252}$/.test(workerName))
    problems.push(
      `worker name '${workerName}' (SPO_WORKER_NAME, POD_NAME or hostname) has characters other than letters, digits, '-', '_', '.'`,
    );

  const port = integer('SPO_PORT', 8080, 1, 65535);
  const host = text('SPO_HOST') ?? '0.0.0.0';

  const redisNodes: { host: string; port: number }[] = [];
  const nodes = text('SPO_REDIS_NODES');
  if (!nodes)
    problems.push("SPO_REDIS_NODES is required: comma-separated host:port of Redis Cluster nodes, e.g. 'redis-0:6379,redis-1:6379'");
  else {
    for (const entry of nodes
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const match = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
      const nodePort = match ? Number(match[2]) : NaN;
      if (!match || nodePort < 1 || nodePort > 65535) problems.push(`SPO_REDIS_NODES entry '${entry}' is not host:port`);
      else redisNodes.push({ host: (match[1] as string).replace(/^\[|\]$/g, ''), port: nodePort });
    }
    if (redisNodes.length === 0 && !problems.some((p) => p.startsWith('SPO_REDIS_NODES')))
      problems.push('SPO_REDIS_NODES has no host:port entry');
  }

  const redisTls = parseTls(text, bool, problems);

  const sessionTtlSeconds = integer('SPO_SESSION_TTL_SECONDS', 3600, 1, 30 * 24 * 3600);
  const anonTtlSeconds = integer('SPO_ANON_TTL_SECONDS', 300, 1, 30 * 24 * 3600);
  if (anonTtlSeconds > sessionTtlSeconds)
    problems.push(`SPO_ANON_TTL_SECONDS=${anonTtlSeconds} must not exceed SPO_SESSION_TTL_SECONDS=${sessionTtlSeconds}`);
  const maxSessionBytes = integer('SPO_MAX_SESSION_BYTES', 1024 * 1024, 1024, 512 * 1024 * 1024);
  const durabilityRaw = oneOf('SPO_DURABILITY', ['leader', 'replica'] as const, 'leader');
  const sessionMode = oneOf('SPO_SESSION_MODE', SESSION_MODES, 'Centralized');
  const allowDegraded = bool('SPO_ALLOW_DEGRADED', false);
  const drainDeadlineSeconds = integer('SPO_DRAIN_DEADLINE_SECONDS', 30, 0, 3600);
  const shutdownLingerSeconds = integer('SPO_SHUTDOWN_LINGER_SECONDS', 5, 0, 60);
  const heartbeatSeconds = integer('SPO_HEARTBEAT_SECONDS', 5, 1, 300);
  const idleSeconds = integer('SPO_IDLE_SECONDS', 300, 1, 24 * 3600);
  const handlerPort = text('SPO_HANDLER_PORT') === undefined ? undefined : integer('SPO_HANDLER_PORT', 8081, 1, 65535);
  if (handlerPort !== undefined && handlerPort === port) problems.push(`SPO_HANDLER_PORT=${handlerPort} must differ from SPO_PORT`);
  const handlerTimeoutMs = integer('SPO_HANDLER_TIMEOUT_MS', 60_000, 100, 3_600_000);
  const advertiseEndpoint =
    text('SPO_ADVERTISE_ENDPOINT') ?? `${text('POD_IP') ?? (host === '0.0.0.0' || host === '::' ? defaultHostname : host)}:${port}`;

  const adminToken = text('SPO_ADMIN_TOKEN');
  if (adminToken !== undefined && (adminToken.length < MIN_ADMIN_TOKEN_LENGTH || /\s/.test(adminToken)))
    problems.push(`SPO_ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters without spaces (its value is not shown)`);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    pool: poolIdentity(poolNamespace, pool),
    workerName,
    host,
    port,
    advertiseEndpoint,
    redisNodes,
    redisUsername: text('SPO_REDIS_USERNAME'),
    redisPassword: env.SPO_REDIS_PASSWORD ? env.SPO_REDIS_PASSWORD : undefined,
    redisTls,
    keyPrefix: text('SPO_KEY_PREFIX'),
    sessionTtlSeconds,
    anonTtlSeconds,
    maxSessionBytes,
    maxBodyBytes: maxSessionBytes + 64 * 1024,
    durability: durabilityRaw,
    sessionMode,
    allowDegraded,
    drainDeadlineSeconds,
    shutdownLingerSeconds,
    heartbeatSeconds,
    idleSeconds,
    adminToken,
    handlerPort,
    handlerTimeoutMs,
  };
}

const TLS_DETAIL_VARS = [
  'SPO_REDIS_TLS_CA_FILE',
  'SPO_REDIS_TLS_CERT_FILE',
  'SPO_REDIS_TLS_KEY_FILE',
  'SPO_REDIS_TLS_SERVER_NAME',
  'SPO_REDIS_TLS_INSECURE_SKIP_VERIFY',
] as const;

function parseTls(
  text: (name: string) => string | undefined,
  bool: (name: string, fallback: boolean) => boolean,
  problems: string[],
): WorkerTlsConfig | undefined {
  if (!bool('SPO_REDIS_TLS', false)) {
    // A CA or certificate given without TLS would be silently ignored: the connection would be in clear.
    for (const name of TLS_DETAIL_VARS) if (text(name) !== undefined) problems.push(`${name} is set but SPO_REDIS_TLS is not true`);
    return undefined;
  }
  const tls: WorkerTlsConfig = {
    caFile: text('SPO_REDIS_TLS_CA_FILE'),
    certFile: text('SPO_REDIS_TLS_CERT_FILE'),
    keyFile: text('SPO_REDIS_TLS_KEY_FILE'),
    serverName: text('SPO_REDIS_TLS_SERVER_NAME'),
    insecureSkipVerify: bool('SPO_REDIS_TLS_INSECURE_SKIP_VERIFY', false),
  };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
    problems.push('SPO_REDIS_TLS_CERT_FILE and SPO_REDIS_TLS_KEY_FILE go together (a client certificate and its key)');
  const nameProblem = tls.serverName === undefined ? undefined : serverNameProblem(tls.serverName);
  if (nameProblem) problems.push(`SPO_REDIS_TLS_SERVER_NAME ${nameProblem}`);
  return tls;
}

/** The store connection: credentials from the environment, TLS material read from its files. */
export function redisConnection(
  config: WorkerConfig,
  readFile: (file: string) => string = (f) => readFileSync(f, 'utf8'),
): RedisConnectionSettings {
  const connection: RedisConnectionSettings = {};
  if (config.redisUsername !== undefined) connection.username = config.redisUsername;
  if (config.redisPassword !== undefined) connection.password = config.redisPassword;
  const tls = config.redisTls;
  if (!tls) return connection;
  const problems: string[] = [];
  const pem = (variable: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    try {
      const content = readFile(file);
      if (!content.includes('-----BEGIN ')) problems.push(`${variable}=${file} holds no PEM block`);
      return content;
    } catch (error) {
      problems.push(`${variable}=${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return undefined;
    }
  };
  const ca = pem('SPO_REDIS_TLS_CA_FILE', tls.caFile);
  const cert = pem('SPO_REDIS_TLS_CERT_FILE', tls.certFile);
  const key = pem('SPO_REDIS_TLS_KEY_FILE', tls.keyFile);
  if (problems.length > 0) throw new ConfigError(problems);
  connection.tls = {
    insecureSkipVerify: tls.insecureSkipVerify,
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(tls.serverName !== undefined ? { serverName: tls.serverName } : {}),
  };
  return connection;
}

/** The configuration without secrets, for the start-up log line. */
export function describeConfig(config: WorkerConfig): Record<string, unknown> {
  return { ...config, redisPassword: config.redisPassword ? '[set]' : undefined, adminToken: config.adminToken ? '[set]' : undefined };
}
