// One session-store client per distinct connection (endpoints, key prefix, credentials, TLS,
// durability), shared by the pools that use the same one and closed when no pool uses it any
// more. Credentials are read from the pool's Secret (cached briefly: the Secret is only ever
// read by name, never listed). Every store call is bounded by a timeout so an unreachable
// Redis makes a reconcile fail fast (StoreReachable False) instead of hanging a worker.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { SessionPool } from '../../api/index.ts';
import { isNotFound } from '../../kube/errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { createSessionStore, type SessionStore, type SessionStoreOptions } from '../../store/index.ts';

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

export class StoreTimeoutError extends Error {
  constructor(op: string, ms: number) {
    super(`session store ${op} did not answer within ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

export interface ConnectionSettings {
  nodes: string[];
  keyPrefix: string;
  username?: string;
  password?: string;
  tls: boolean;
  ca?: string;
  insecureSkipVerify: boolean;
  durability: 'leader' | 'replica';
}

export type StoreFactory = (options: SessionStoreOptions) => SessionStore;

export interface StoreClientsOptions {
  readSecret: (namespace: string, name: string) => Promise<V1Secret>;
  factory?: StoreFactory;
  /** Per store call. Default 5 s. */
  timeoutMs?: number;
  /** How long a Secret read is reused. Default 30 s. */
  secretTtlMs?: number;
  registry?: Registry;
  logger?: Logger;
  now?: () => number;
}

interface Entry {
  store: SessionStore;
  users: Set<string>;
}

function secretValue(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

export function connectionKey(settings: ConnectionSettings): string {
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

export class StoreClients {
  private readonly options: StoreClientsOptions;
  private readonly byConnection = new Map<string, Entry>();
  private readonly poolConnection = new Map<string, string>();
  private readonly secrets = new Map<string, { at: number; secret: V1Secret }>();
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(options: StoreClientsOptions) {
    this.options = options;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  private async secret(namespace: string, name: string): Promise<V1Secret> {
    const key = `${namespace}/${name}`;
    const cached = this.secrets.get(key);
    if (cached && this.now() - cached.at < (this.options.secretTtlMs ?? 30_000)) return cached.secret;
    try {
      const secret = await this.options.readSecret(namespace, name);
      this.secrets.set(key, { at: this.now(), secret });
      return secret;
    } catch (err) {
      if (isNotFound(err)) throw new CredentialsError(`Secret ${namespace}/${name} (spec.store) does not exist`);
      throw err;
    }
  }

  /** The pool's connection settings, with credentials resolved from its Secrets. */
  async settings(pool: SessionPool): Promise<ConnectionSettings> {
    const namespace = pool.metadata.namespace ?? 'default';
    const { store } = pool.spec;
    const settings: ConnectionSettings = {
      nodes: [...store.endpoints].sort(),
      keyPrefix: store.keyPrefix,
      tls: store.tls.enabled,
      insecureSkipVerify: store.tls.insecureSkipVerify,
      durability: store.durability,
    };
    const creds = store.credentialsSecretRef;
    if (creds) {
      const secret = await this.secret(namespace, creds.name);
      const password = secretValue(secret, creds.passwordKey);
      if (password === undefined)
        throw new CredentialsError(
          `Secret ${namespace}/${creds.name} has no key ${creds.passwordKey} (spec.store.credentialsSecretRef.passwordKey)`,
        );
      settings.password = password;
      if (creds.usernameKey) {
        const username = secretValue(secret, creds.usernameKey);
        if (username === undefined)
          throw new CredentialsError(
            `Secret ${namespace}/${creds.name} has no key ${creds.usernameKey} (spec.store.credentialsSecretRef.usernameKey)`,
          );
        settings.username = username;
      }
    }
    if (store.tls.enabled && store.tls.caSecretRef) {
      const secret = await this.secret(namespace, store.tls.caSecretRef.name);
      const ca = secretValue(secret, store.tls.caSecretRef.key);
      if (ca === undefined)
        throw new CredentialsError(
          `Secret ${namespace}/${store.tls.caSecretRef.name} has no key ${store.tls.caSecretRef.key} (spec.store.tls.caSecretRef)`,
        );
      settings.ca = ca;
    }
    return settings;
  }

  /** The store client for the pool (key "namespace/name"); switches and releases on a settings change. */
  async forPool(poolKey: string, pool: SessionPool): Promise<SessionStore> {
    const settings = await this.settings(pool);
    const key = connectionKey(settings);
    const previous = this.poolConnection.get(poolKey);
    if (previous !== undefined && previous !== key) await this.release(poolKey);
    let entry = this.byConnection.get(key);
    if (!entry) {
      entry = { store: this.create(settings), users: new Set() };
      this.byConnection.set(key, entry);
      this.options.logger?.info(
        { nodes: settings.nodes, keyPrefix: settings.keyPrefix, tls: settings.tls },
        'session store client created',
      );
    }
    entry.users.add(poolKey);
    this.poolConnection.set(poolKey, key);
    return entry.store;
  }

  /** The pool no longer needs its client; closes it when no other pool uses it. */
  async release(poolKey: string): Promise<void> {
    const key = this.poolConnection.get(poolKey);
    if (key === undefined) return;
    this.poolConnection.delete(poolKey);
    const entry = this.byConnection.get(key);
    if (!entry) return;
    entry.users.delete(poolKey);
    if (entry.users.size === 0) {
      this.byConnection.delete(key);
      await entry.store.close().catch(() => undefined);
      this.options.logger?.info('session store client closed (no pool uses it)');
    }
  }

  /** Bounds a store call by the timeout. */
  async call<T>(op: string, work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreTimeoutError(op, this.timeoutMs)), this.timeoutMs);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  clientCount(): number {
    return this.byConnection.size;
  }

  async closeAll(): Promise<void> {
    const entries = [...this.byConnection.values()];
    this.byConnection.clear();
    this.poolConnection.clear();
    await Promise.all(entries.map((e) => e.store.close().catch(() => undefined)));
  }

  private create(settings: ConnectionSettings): SessionStore {
    const redisOptions: Record<string, unknown> = { connectTimeout: 2000 };
    if (settings.username !== undefined) redisOptions.username = settings.username;
    if (settings.password !== undefined) redisOptions.password = settings.password;
    if (settings.tls) redisOptions.tls = { ...(settings.ca ? { ca: settings.ca } : {}), rejectUnauthorized: !settings.insecureSkipVerify };
    const options: SessionStoreOptions = {
      nodes: settings.nodes,
      keyPrefix: settings.keyPrefix,
      durability: settings.durability,
      commandTimeoutMs: 3000,
      // The operator never queues writes: an unreachable store must show, not be papered over.
      degraded: { enabled: false },
      retry: { maxAttempts: 3, maxElapsedMs: 2000 },
      clusterOptions: { redisOptions, slotsRefreshInterval: 30_000 },
    };
    if (this.options.registry) options.registry = this.options.registry;
    if (this.options.logger) options.logger = this.options.logger;
    return (this.options.factory ?? createSessionStore)(options);
  }
}
