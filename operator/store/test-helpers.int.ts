// Shared set-up of the store's integration tests: a store on the test run's Redis Cluster
// with its own key prefix and a fresh metrics registry.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import type { Cluster } from 'ioredis';
import { redisTestEnv } from '../../e2e/harness/test-env.ts';
import { splitValue } from './codec.ts';
import { createSessionStore } from './index.ts';
import type { SessionStoreOptions } from './options.ts';
import type { StoreCore } from './core.ts';
import { BUCKETS } from './indexes.ts';

export const silentLogger = pino({ level: process.env.SPO_TEST_LOG_LEVEL ?? 'silent' });

export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString('hex')}`;
}

export function testStore(prefix: string, options: Partial<SessionStoreOptions> = {}) {
  const registry = new Registry();
  const store = createSessionStore({ nodes: redisTestEnv().endpoints, keyPrefix: prefix, registry, logger: silentLogger, ...options });
  return { store, registry };
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

export async function expectRejected(promise: Promise<unknown>, type: abstract new (...args: never[]) => Error): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(type);
    return error as Error;
  }
  expect.fail(`expected a ${type.name}`);
}

/** Index (in the harness state) of the node that is master of the key's slot, as the client sees it. */
export function masterIndexOf(
  store: { core: { redis: { slots: string[][] } } },
  nodes: { index: number; port: number }[],
  slot: number,
): number {
  const nodeKey = store.core.redis.slots[slot]?.[0];
  const port = Number(nodeKey?.split(':').pop());
  const node = nodes.find((n) => n.port === port);
  if (!node) throw new Error(`no node serves slot ${slot}`);
  return node.index;
}

/** The header parts and data of a stored session value (what tests inspect and tamper with). */
export async function storedParts(redis: Cluster, key: string): Promise<{ header: string[]; data: string }> {
  const parts = splitValue(await redis.get(key));
  if (!parts) throw new Error(`${key} holds no session value`);
  return { header: parts.header.split('\n'), data: parts.data };
}

/** Rewrites a stored session value, keeping its TTL: header parts changed by `change`, data replaced when given. */
export async function rewriteStored(redis: Cluster, key: string, change: (header: string[]) => void, data?: string): Promise<void> {
  const stored = await storedParts(redis, key);
  change(stored.header);
  await redis.set(key, `${stored.header.join('\n')}\n${data ?? stored.data}`, 'KEEPTTL');
}

/** Every id in the pool's lease index (all buckets). */
export async function leaseIndexMembers(core: StoreCore, pool: string): Promise<string[]> {
  return (await Promise.all(BUCKETS.map((b) => core.redis.zrange(core.keys.leaseIndex(pool, b), '0', '-1')))).flat();
}
