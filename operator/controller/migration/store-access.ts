// A pool's session store and migration journal, for the migration runner. The Redis clients are
// the operator's one per-pool client cache (controller/pool/store-clients.ts, shared with the
// pool controller: one client per distinct connection, rebuilt on a settings or Secret change,
// released when the pool is deleted); this adds only the journal over the same client.
import type { SessionPool } from '../../api/index.ts';
import { MigrationJournal, type Journal } from '../../migration/journal.ts';
import { RedisSessionStore, type SessionStore } from '../../store/index.ts';
import { storePoolId } from '../pool/names.ts';
import type { StoreClients } from '../pool/store-clients.ts';

export interface PoolStore {
  store: SessionStore;
  journal: Journal;
  /** The pool identity as the store knows it (`<namespace>/<name>`, storePoolId). */
  pool: string;
  keyPrefix: string;
}

export class StoreAccess {
  private readonly clients: Pick<StoreClients, 'forPool'>;
  /** Journals per client and pool identity (a new client after a settings change gets new ones). */
  private readonly journals = new WeakMap<SessionStore, Map<string, Journal>>();

  constructor(clients: Pick<StoreClients, 'forPool'>) {
    this.clients = clients;
  }

  /** The pool's store client (from the shared cache) and its migration journal. */
  async forPool(pool: SessionPool): Promise<PoolStore> {
    const key = `${pool.metadata.namespace ?? 'default'}/${pool.metadata.name ?? ''}`;
    const store = await this.clients.forPool(key, pool);
    const id = storePoolId(pool);
    const keyPrefix = pool.spec.store.keyPrefix;
    let byPool = this.journals.get(store);
    if (!byPool) this.journals.set(store, (byPool = new Map<string, Journal>()));
    let journal = byPool.get(`${keyPrefix}|${id}`);
    if (!journal) {
      if (!(store instanceof RedisSessionStore)) throw new Error('the migration journal needs a Redis session store');
      journal = new MigrationJournal(store.core.redis, { prefix: keyPrefix, pool: id });
      byPool.set(`${keyPrefix}|${id}`, journal);
    }
    return { store, journal, pool: id, keyPrefix };
  }
}
