// The three store operations a migration makes on every session it moves (read owner and epoch,
// set or clear the moving mark, swap the owner), behind one interface so the executor does not
// care how they reach Redis: through the store's own batch calls (any SessionStore, test doubles
// included), or with a RedisSessionStore through bulk-owners.ts (one script call per master for
// many sessions).
import type { OwnerMove, OwnerMoveOutcome, OwnerState, SessionStore } from '../store/types.ts';

export type OwnerRead = Pick<OwnerState, 'owner' | 'epoch'>;

export interface OwnerOps {
  /** Owner and epoch of each session; absent ones are left out. */
  read(pool: string, ids: string[]): Promise<Map<string, OwnerRead>>;
  /** Sets (migration) or clears (null) the moving mark of each session. */
  mark(pool: string, ids: string[], migration: string | null): Promise<void>;
  /** Fenced owner swaps. `clearsMarks`: a `moved` outcome also cleared the session's moving mark. */
  migrate(pool: string, moves: OwnerMove[], migration: string): Promise<{ outcomes: OwnerMoveOutcome[]; clearsMarks: boolean }>;
}

/**
 * Through the store's batch calls: readOwners and migrateOwners when the store has them (optional in
 * its contract), else get (readConcurrency at a time) and moveOwners (which leaves the marks set).
 */
export function storeOwnerOps(store: SessionStore, readConcurrency: number): OwnerOps {
  return {
    async read(pool, ids) {
      if (ids.length === 0) return new Map();
      if (store.readOwners) return store.readOwners(pool, ids);
      const result = new Map<string, OwnerRead>();
      for (let i = 0; i < ids.length; i += readConcurrency) {
        const chunk = ids.slice(i, i + readConcurrency);
        const records = await Promise.all(chunk.map((id) => store.get(id, { pool, touch: false })));
        for (const record of records) if (record) result.set(record.id, record);
      }
      return result;
    },
    mark: (pool, ids, migration) => store.setMoving(pool, ids, migration),
    async migrate(pool, moves, migration) {
      if (store.migrateOwners) return { outcomes: await store.migrateOwners(pool, moves, migration), clearsMarks: true };
      return { outcomes: await store.moveOwners(pool, moves), clearsMarks: false };
    },
  };
}
