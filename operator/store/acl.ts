// The Redis ACL rules of one pool's user: exactly the keys and commands its workers and the
// operator (which connects with the same credentials Secret) use for that pool, and nothing else.
// The key patterns come from the key layout functions themselves (keys.ts, the migration
// journal), so they follow the layout. See docs/store.md, "ACL users".
import type { Cluster } from 'ioredis';
import { MigrationJournal } from '../migration/journal.ts';
import { idempotencyKeyOf, idempotencyOrderKeyOf } from './idempotency.ts';
import { requestRecordKeyOf } from './request-records.ts';
import { assertPoolId, keyLayout } from './keys.ts';

/**
 * Every command the store, the workers and the migration journal send, as ACL command rules.
 * Lua scripts are ACL-checked twice: EVALSHA/EVAL against the keys they declare, and every
 * redis.call inside against the user's commands and keys, so the commands the scripts call are
 * listed too. Connection set-up by ioredis: AUTH/HELLO, INFO (the per-node ready check), READONLY
 * (replica connections), CLIENT SETNAME (its slot refresher), CLUSTER SLOTS and CLUSTER INFO (slot
 * map, cluster ready check); QUIT on close. CLIENT SETINFO is switched off (core.ts). Measured:
 * INFO commandstats over the store, worker and migration integration tests.
 */
export const POOL_ACL_COMMANDS = [
  // connection and cluster topology (ioredis)
  'auth',
  'hello',
  'ping',
  'info',
  'quit',
  'readonly',
  'client|setname',
  'cluster|slots',
  'cluster|info',
  // scripts (lua.ts, journal.ts)
  'evalsha',
  'eval',
  // strings: session values, quarantine copies
  'get',
  'getrange',
  'set',
  'setrange',
  'del',
  'exists',
  'rename',
  'expire',
  'pexpire',
  'ttl',
  'pttl',
  'time',
  // hashes: worker registry, journal
  'hget',
  'hset',
  'hdel',
  'hgetall',
  'hmget',
  'hincrby',
  'hlen',
  // sets and sorted sets: indexes of pools, owners, leases, migrations
  'sadd',
  'srem',
  'scard',
  'smembers',
  'sscan',
  'zadd',
  'zrem',
  'zcard',
  'zrange',
  'zrangebyscore',
  'zscan',
  // durability 'replica'
  'wait',
] as const;

/** Redis glob characters in a name are matched literally (pool names never hold them today). */
function literal(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Placeholder a layout function is called with; becomes `*` in the pattern. Valid as a name and a uid. */
const ANY = 'ACL-ANY-0';

/**
 * The key patterns of a pool: every key it owns and no other. Each pattern is the pool's literal key up
 * to a fixed separator the pool identity never holds (`|` in a session key, `}` or `:` elsewhere), then
 * `*`: no key of another pool (nor of another key prefix) matches it.
 */
export function aclKeyPatternsForPool(keyPrefix: string, pool: string): string[] {
  assertPoolId(pool);
  const layout = keyLayout(keyPrefix);
  const pattern = (key: string) => literal(key).split(ANY).join('*');
  const journal = new MigrationJournal(undefined as unknown as Cluster, { prefix: keyPrefix, pool }).keys(ANY);
  const patterns = [
    layout.session(pool, ANY),
    idempotencyKeyOf(layout.session(pool, ANY)),
    idempotencyOrderKeyOf(layout.session(pool, ANY)),
    // Records of keyed creates and anonymous executes: session-shaped keys with a derived id.
    requestRecordKeyOf(layout.session(pool, ANY)),
    layout.quarantine(pool, ANY),
    layout.poolIndex(pool, ANY),
    layout.leaseIndex(pool, ANY),
    layout.owners(pool, ANY),
    layout.ownerIndex(pool, ANY, ANY),
    layout.workers(pool),
    // The single-slot layout, read and emptied by index-layout.ts.
    layout.legacy.poolIndex(pool),
    layout.legacy.leaseIndex(pool),
    layout.legacy.owners(pool),
    layout.legacy.ownerIndex(pool, ANY),
    journal.header,
    journal.batches,
    journal.plan,
    journal.active,
  ].map(pattern);
  return [...new Set(patterns)];
}

/**
 * The ACL SETUSER rules of the pool's user (after the user name): `reset` first, so nothing
 * granted earlier survives, then the password, the key patterns and the commands.
 */
export function aclRulesForPool(options: { keyPrefix: string; pool: string; password: string }): string[] {
  return [
    'reset',
    'on',
    `>${options.password}`,
    'resetchannels',
    ...aclKeyPatternsForPool(options.keyPrefix, options.pool).map((p) => `~${p}`),
    '-@all',
    ...POOL_ACL_COMMANDS.map((c) => `+${c}`),
  ];
}
