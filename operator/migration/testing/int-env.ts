// Set-up shared by the migration engine's integration tests and benchmark: a real store and a
// journal on one Redis Cluster client, and simulated workers that write with fencing.
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { createSessionStore, FencedError, SessionMovingError } from '../../store/index.ts';
import type { SessionStore } from '../../store/types.ts';
import { MigrationJournal } from '../journal.ts';

export const silentLogger = pino({ level: process.env.SPO_TEST_LOG_LEVEL ?? 'silent' });

export function uniqueName(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

export function clusterClient(endpoints: string[]): Cluster {
  return new Cluster(
    endpoints.map((e) => ({ host: e.slice(0, e.lastIndexOf(':')), port: Number(e.slice(e.lastIndexOf(':') + 1)) })),
    {
      enableAutoPipelining: true,
      maxRedirections: 16,
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 1000,
      slotsRefreshInterval: 1000,
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      redisOptions: { connectTimeout: 1000, commandTimeout: 3000, maxRetriesPerRequest: 2 },
    },
  );
}

export interface MigrationEnv {
  redis: Cluster;
  store: SessionStore & { close(): Promise<void> };
  journal: MigrationJournal;
  registry: Registry;
  prefix: string;
  close(): Promise<void>;
}

export function migrationEnv(endpoints: string[], prefix = uniqueName('tmig')): MigrationEnv {
  const redis = clusterClient(endpoints);
  const registry = new Registry();
  const store = createSessionStore({ redis, keyPrefix: prefix, registry, logger: silentLogger, degraded: { enabled: false } });
  const journal = new MigrationJournal(redis, { prefix });
  return {
    redis,
    store,
    journal,
    registry,
    prefix,
    async close() {
      await store.close();
      redis.disconnect();
    },
  };
}

/** Creates `count` sessions owned by `owner` with data {n: 0}, `concurrency` at a time. */
export async function createOwned(store: SessionStore, pool: string, owner: string, count: number, concurrency = 500): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += concurrency) {
    const made = await Promise.all(
      Array.from({ length: Math.min(concurrency, count - i) }, () => store.create({ pool, owner, data: { n: 0 } })),
    );
    ids.push(...made.map((r) => r.id));
  }
  return ids;
}

export interface WriterStats {
  /** Acknowledged increments per session. */
  acked: Map<string, number>;
  /** Writes that failed with an error other than fenced/moving: they may or may not have applied. */
  uncertain: Map<string, number>;
  fenced: number;
  moving: number;
  writes: number;
}

/**
 * Simulated workers: `writers` loops that each pick a session, read its owner and epoch, and
 * increment data.n with a fence on that owner and epoch. A fenced or moving refusal is re-read and
 * retried (what a client does against the new owner). Runs until stop() is called.
 */
export function startWriters(
  store: SessionStore,
  pool: string,
  ids: string[],
  writers = 8,
): { stats: WriterStats; stop(): Promise<WriterStats> } {
  const stats: WriterStats = { acked: new Map(), uncertain: new Map(), fenced: 0, moving: 0, writes: 0 };
  let running = true;
  const loop = async (seed: number): Promise<void> => {
    let k = seed;
    while (running) {
      const id = ids[(k = (k * 1103515245 + 12345) >>> 0) % ids.length]!;
      for (let attempt = 0; attempt < 20 && running; attempt++) {
        try {
          const record = await store.get(id, { pool, touch: false });
          if (!record) break;
          const fence = record.owner ? { epoch: record.epoch, owner: record.owner } : { epoch: record.epoch };
          await store.mutate(id, (data) => ({ n: ((data as { n?: number } | null)?.n ?? 0) + 1 }), { pool, fence });
          stats.acked.set(id, (stats.acked.get(id) ?? 0) + 1);
          stats.writes++;
          break;
        } catch (error) {
          if (error instanceof FencedError) stats.fenced++;
          else if (error instanceof SessionMovingError) {
            stats.moving++;
            await new Promise((r) => setTimeout(r, 5));
          } else {
            stats.uncertain.set(id, (stats.uncertain.get(id) ?? 0) + 1);
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
    }
  };
  const loops = Array.from({ length: writers }, (_, i) => loop(i + 1));
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}
