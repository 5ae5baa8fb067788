// The session store library: createSessionStore(options) and everything a consumer names.
import type { SessionStoreOptions } from './options.ts';
import { RedisSessionStore } from './session-store.ts';
import type { SessionStore } from './types.ts';

export type * from './types.ts';
export type { SessionStoreOptions, PoolSettings, ReplayConflict } from './options.ts';
export type { JournalEntry } from './degraded.ts';
export type { RetryPolicy } from './retry.ts';
export * from './errors.ts';
export { RedisSessionStore } from './session-store.ts';
export { INDEX_BUCKETS, indexBucket, keyLayout, newSessionId, poolIdentity } from './keys.ts';
// Readers of a pool's bucketed indexes, for parts that list or count sessions without the store's methods.
export { countOwnerIndexes, listOwnerIndex, listPoolSessions } from './indexes.ts';
export { redisConnectionOptions, serverNameProblem, type RedisConnectionSettings, type RedisTlsSettings } from './connection.ts';

export function createSessionStore(options: SessionStoreOptions): RedisSessionStore & SessionStore {
  return new RedisSessionStore(options);
}
