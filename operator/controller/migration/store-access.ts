// One session-store client (and migration journal) per SessionPool, for the migration and drain
// controllers. The pool reconciler owns a per-pool client cache (controller/pool/
// store-clients.ts); until that lands this is a small stand-in with the same key (the pool's
// store settings and credentials), so a changed endpoint list or Secret builds a new client and
// closes the old one. Degraded mode is off: a migration must see a store error, never queue.
import { createHash } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { SessionPool } from '../../api/index.ts';
import { MigrationJournal, type Journal } from '../../migration/journal.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { createSessionStore, type RedisConnectionSettings, type SessionStore } from '../../store/index.ts';
import { poolConnection } from '../pool/connection.ts';
import { storePoolId } from '../pool/names.ts';

export interface PoolStore {
  store: SessionStore;
  journal: Journal;
  /** The pool identity as the store knows it (`<namespace>/<name>`, storePoolId). */
  pool: string;
  keyPrefix: string;
}

export interface StoreAccessOptions {
  core: Pick<CoreV1Api, 'readNamespacedSecret'>;
  registry?: Registry;
  logger?: Logger;
  /** Builds the client (tests pass an in-memory store). */
  build?: (pool: SessionPool, connection: RedisConnectionSettings) => PoolStore;
}

interface Entry {
  hash: string;
  value: PoolStore;
  close: () => Promise<void>;
}

export class StoreAccess {
  private readonly entries = new Map<string, Entry>();
  private readonly options: StoreAccessOptions;
  private readonly log: Logger;

  constructor(options: StoreAccessOptions) {
    this.options = options;
    this.log = options.logger ?? createLogger('store-access');
  }

  /** The store client of a pool, built (or rebuilt after a settings change) on demand. */
  async forPool(pool: SessionPool): Promise<PoolStore> {
    const namespace = pool.metadata.namespace ?? 'default';
    const name = pool.metadata.name ?? '';
    const store = pool.spec.store;
    const connection = await poolConnection(pool, (ns, secret) => this.options.core.readNamespacedSecret({ name: secret, namespace: ns }));
    const hash = createHash('sha256')
      .update(JSON.stringify([store, connection]))
      .digest('hex');
    const key = `${namespace}/${name}`;
    const existing = this.entries.get(key);
    if (existing && existing.hash === hash) return existing.value;
    if (existing) {
      this.entries.delete(key);
      void existing.close().catch(() => undefined);
    }
    const value = this.options.build ? this.options.build(pool, connection) : this.build(pool, connection);
    this.entries.set(key, { hash, value, close: () => value.store.close() });
    return value;
  }

  private build(pool: SessionPool, connection: RedisConnectionSettings): PoolStore {
    const store = pool.spec.store;
    const id = storePoolId(pool);
    const client = createSessionStore({
      nodes: store.endpoints,
      keyPrefix: store.keyPrefix,
      durability: store.durability,
      degraded: { enabled: false },
      connection,
      ...(this.options.registry ? { registry: this.options.registry } : {}),
      logger: this.log.child({ pool: id }),
    });
    const journal = new MigrationJournal(client.core.redis, { prefix: store.keyPrefix, pool: id });
    return { store: client, journal, pool: id, keyPrefix: store.keyPrefix };
  }

  /** Closes the client of a pool that is gone. */
  async forget(namespace: string, name: string): Promise<void> {
    const entry = this.entries.get(`${namespace}/${name}`);
    this.entries.delete(`${namespace}/${name}`);
    await entry?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.close().catch(() => undefined)));
  }
}
