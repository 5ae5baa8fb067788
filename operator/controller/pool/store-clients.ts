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
import { createSessionStore, type RedisConnectionSettings, type SessionStore, type SessionStoreOptions } from '../../store/index.ts';
import { CredentialsError, poolConnection } from './connection.ts';

export { CredentialsError } from './connection.ts';

export class StoreTimeoutError extends Error {
  constructor(op: string, ms: number) {
    super(`session store ${op} did not answer within ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

export interface ConnectionSettings {
  nodes: string[];
  keyPrefix: string;
  /** ACL user, password and TLS material (from the pool's Secrets). */
  connection: RedisConnectionSettings;
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

  /** The pool's connection settings, with credentials and TLS material resolved from its Secrets. */
  async settings(pool: SessionPool): Promise<ConnectionSettings> {
    const { store } = pool.spec;
    return {
      nodes: [...store.endpoints].sort(),
      keyPrefix: store.keyPrefix,
      connection: await poolConnection(pool, (namespace, name) => this.secret(namespace, name)),
      durability: store.durability,
    };
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
        { nodes: settings.nodes, keyPrefix: settings.keyPrefix, tls: settings.connection.tls !== undefined },
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
    const options: SessionStoreOptions = {
      nodes: settings.nodes,
      keyPrefix: settings.keyPrefix,
      durability: settings.durability,
      commandTimeoutMs: 3000,
      // The operator never queues writes: an unreachable store must show, not be papered over.
      degraded: { enabled: false },
      retry: { maxAttempts: 3, maxElapsedMs: 2000 },
      connection: settings.connection,
      clusterOptions: { redisOptions: { connectTimeout: 2000 }, slotsRefreshInterval: 30_000 },
    };
    if (this.options.registry) options.registry = this.options.registry;
    if (this.options.logger) options.logger = this.options.logger;
    return (this.options.factory ?? createSessionStore)(options);
  }
}
