// Options of createSessionStore and their defaults.
import type { Cluster, ClusterOptions } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import type { Registry } from 'prom-client';
import type { RetryPolicy } from './retry.ts';
import type { DurabilityLevel } from './types.ts';
import type { JournalEntry } from './degraded.ts';
import type { RedisConnectionSettings } from './connection.ts';

export interface PoolSettings {
  /** Default TTL of this pool's sessions, seconds. */
  ttlSeconds?: number;
  /** Default TTL of this pool's anonymous sessions, seconds. */
  anonymousTtlSeconds?: number;
}

export interface ReplayConflict {
  entry: JournalEntry;
  /** 'version', 'fenced', 'moving', 'missing', 'exists', or an error code. */
  reason: string;
}

export interface SessionStoreOptions {
  /** "host:port" of one or more cluster nodes. Either this or `redis`. */
  nodes?: string[];
  /** A Cluster client to use instead of one built from `nodes`; close() leaves it open. */
  redis?: Cluster;
  /** ACL user, password and TLS of every node connection (with `nodes`); see connection.ts. */
  connection?: RedisConnectionSettings;
  /** Extra ioredis Cluster options (merged over the store's defaults and `connection`). */
  clusterOptions?: ClusterOptions;
  /** Prefix of every key. Default 'spo'. */
  keyPrefix?: string;
  /** Default 3600. */
  defaultTtlSeconds?: number;
  /** Default 300. */
  anonymousTtlSeconds?: number;
  /** Per-pool TTL defaults. */
  pools?: Record<string, PoolSettings>;
  /** Largest serialized data, bytes. Default 1 MiB. */
  maxDataBytes?: number;
  /** Touch granularity, ms (default 60 000; 0 = every get touches). Like Linux's relatime: a get sets
   *  lastAccessedAt and slides the TTL only when the last slide is at least min(this, TTL/10) old; within
   *  that it only reads. Updates slide on the same rule. See docs/store.md, "Touch granularity". */
  touchGranularityMs?: number;
  /** Default lease length for claim, renew and moveOwners. Default 30 000 ms. */
  defaultLeaseMs?: number;
  /** 'leader' (default) or 'replica': WAIT 1 after every write. */
  durability?: DurabilityLevel;
  /** WAIT timeout with durability 'replica'. Default 1000 ms. */
  replicaAckTimeoutMs?: number;
  /** Retry policy for transient errors. */
  retry?: Partial<RetryPolicy>;
  /** Degraded mode (default enabled): local read cache and write journal while Redis is unreachable. */
  degraded?: { enabled?: boolean; cacheSize?: number; journalSize?: number; probeIntervalMs?: number };
  /** Called for each journal entry refused on replay (the write was not applied). */
  onReplayConflict?: (conflict: ReplayConflict) => void;
  /** How long quarantined sessions are kept. Default 7 days. */
  quarantineKeepMs?: number;
  /** Index entries handled per sweep step. Default 500. */
  sweepBatchSize?: number;
  /** Owner-index entries audited per owner per sweep. Default 200. */
  sweepAuditSize?: number;
  /** How long an owner-index entry must look stale (its session gone or another's, the header unchanged)
   *  before the audit removes it, ms: longer than any claim or move stays in flight. Default 15000. */
  sweepAuditGraceMs?: number;
  /** How long a connection that owes replies may stay silent before it is dropped and its commands fail
   *  (and are retried), ms. Default 2000. Enforced per connection (ioredis socketTimeout), not per command. */
  commandTimeoutMs?: number;
  registry?: Registry;
  logger?: Logger;
}
