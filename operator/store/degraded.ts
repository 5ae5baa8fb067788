// Degraded mode: while Redis is unreachable, reads come from a bounded cache of the sessions
// this process last saw, and writes go to a bounded in-memory journal replayed, with the
// same version and fence checks, when Redis answers again. See docs/store.md for the
// guarantees (fewer than normal: stale reads, writes lost if this process dies).
import { LruCache } from './lru.ts';
import { JournalFullError } from './errors.ts';
import type { StoredSession } from './codec.ts';
import type { Fence } from './types.ts';

/** A session as cached: as read and checked (codec's StoredSession); callers get copies (withData). */
export type CachedSession = StoredSession;

export type JournalEntry =
  | {
      kind: 'create';
      id: string;
      pool: string;
      serialized: string;
      checksum: string;
      ttlSeconds: number;
      anonymous: boolean;
      owner: string;
      wid: string;
      at: number;
    }
  | {
      kind: 'update';
      id: string;
      pool: string;
      serialized: string;
      checksum: string;
      expectedVersion: number;
      fence?: Fence;
      wid: string;
      at: number;
    }
  | { kind: 'delete'; id: string; pool: string; at: number };

export class DegradedState {
  active = false;
  since = 0;
  /** Keyed by session key (keys.session(pool, id)): the same id in two pools is two sessions. */
  readonly cache: LruCache<string, CachedSession>;
  readonly journal: JournalEntry[] = [];
  readonly journalSize: number;
  replayed = 0;
  replayConflicts = 0;

  constructor(cacheSize: number, journalSize: number) {
    this.cache = new LruCache(cacheSize);
    this.journalSize = journalSize;
  }

  enqueue(entry: JournalEntry): void {
    if (this.journal.length >= this.journalSize) {
      throw new JournalFullError(`degraded mode: the write journal is full (${this.journalSize} entries); retry when the store is back`);
    }
    this.journal.push(entry);
  }

  /** Entries of one session still waiting, oldest first. */
  pendingFor(id: string): JournalEntry[] {
    return this.journal.filter((entry) => entry.id === id);
  }
}
