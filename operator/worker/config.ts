// The worker's configuration, read from the environment. Every bad value is reported at once,
// with the variable's name and what was expected, before anything starts.
import { hostname } from 'node:os';
import { SESSION_MODES, type SessionMode } from './backends.ts';
import type { DurabilityLevel } from '../store/types.ts';

export interface WorkerConfig {
  pool: string;
  workerName: string;
  host: string;
  port: number;
  /** host:port registered in the store for this worker's API. */
  advertiseEndpoint: string;
  redisNodes: { host: string; port: number }[];
  redisUsername: string | undefined;
  redisPassword: string | undefined;
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
  heartbeatSeconds: number;
  /** When set, /admin/* requires `Authorization: Bearer <token>`. */
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

  const sessionTtlSeconds = integer('SPO_SESSION_TTL_SECONDS', 3600, 1, 30 * 24 * 3600);
  const anonTtlSeconds = integer('SPO_ANON_TTL_SECONDS', 300, 1, 30 * 24 * 3600);
  if (anonTtlSeconds > sessionTtlSeconds)
    problems.push(`SPO_ANON_TTL_SECONDS=${anonTtlSeconds} must not exceed SPO_SESSION_TTL_SECONDS=${sessionTtlSeconds}`);
  const maxSessionBytes = integer('SPO_MAX_SESSION_BYTES', 1024 * 1024, 1024, 512 * 1024 * 1024);
  const durabilityRaw = oneOf('SPO_DURABILITY', ['leader', 'replica'] as const, 'leader');
  const sessionMode = oneOf('SPO_SESSION_MODE', SESSION_MODES, 'Centralized');
  const allowDegraded = bool('SPO_ALLOW_DEGRADED', false);
  const drainDeadlineSeconds = integer('SPO_DRAIN_DEADLINE_SECONDS', 30, 0, 3600);
  const heartbeatSeconds = integer('SPO_HEARTBEAT_SECONDS', 5, 1, 300);
  const handlerPort = text('SPO_HANDLER_PORT') === undefined ? undefined : integer('SPO_HANDLER_PORT', 8081, 1, 65535);
  if (handlerPort !== undefined && handlerPort === port) problems.push(`SPO_HANDLER_PORT=${handlerPort} must differ from SPO_PORT`);
  const handlerTimeoutMs = integer('SPO_HANDLER_TIMEOUT_MS', 60_000, 100, 3_600_000);
  const advertiseEndpoint =
    text('SPO_ADVERTISE_ENDPOINT') ?? `${text('POD_IP') ?? (host === '0.0.0.0' || host === '::' ? defaultHostname : host)}:${port}`;

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    pool,
    workerName,
    host,
    port,
    advertiseEndpoint,
    redisNodes,
    redisUsername: text('SPO_REDIS_USERNAME'),
    redisPassword: env.SPO_REDIS_PASSWORD ? env.SPO_REDIS_PASSWORD : undefined,
    keyPrefix: text('SPO_KEY_PREFIX'),
    sessionTtlSeconds,
    anonTtlSeconds,
    maxSessionBytes,
    maxBodyBytes: maxSessionBytes + 64 * 1024,
    durability: durabilityRaw,
    sessionMode,
    allowDegraded,
    drainDeadlineSeconds,
    heartbeatSeconds,
    adminToken: text('SPO_ADMIN_TOKEN'),
    handlerPort,
    handlerTimeoutMs,
  };
}

/** The configuration without secrets, for the start-up log line. */
export function describeConfig(config: WorkerConfig): Record<string, unknown> {
  return { ...config, redisPassword: config.redisPassword ? '[set]' : undefined, adminToken: config.adminToken ? '[set]' : undefined };
}
