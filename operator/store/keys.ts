// Key layout and names. Every key that one Lua script touches shares a hash tag, so the
// script runs on one slot: a session's value and its quarantine copy share `{<pool>|<id>}`; a pool's
// index, lease index, owner list and worker registry share `{pool:<pool>}`; each owner's
// index has its own slot `{pool:<pool>:owner:<owner>}`. `<pool>` is the pool identity
// (`<namespace>/<name>` for a SessionPool, see poolIdentity): it never holds `:`, `|`, `{` or `}`,
// so no two pools (nor a pool and an owner index) ever map to the same key, and every key a pool
// owns, its sessions included, matches a pattern that names the pool (acl.ts). See docs/store.md.
import { randomBytes } from 'node:crypto';
import { InvalidNameError, InvalidSessionIdError } from './errors.ts';

// Ids are cut from a buffer of CSPRNG bytes drawn 4 KiB at a time (each byte used once), instead of one
// randomBytes call (and its allocation) per id.
const ENTROPY_BYTES = 4096;
let entropy = Buffer.alloc(0);
let entropyAt = 0;

/** 16 random bytes (128 bits, as the issue asks; 2^-64 odds of a guess even among 2^64 live ids), base64url
 *  without padding: 22 characters. Short keys matter: the cluster client hashes every key several times. */
export function newSessionId(): string {
  if (entropyAt + 16 > entropy.length) {
    entropy = randomBytes(ENTROPY_BYTES);
    entropyAt = 0;
  }
  const id = entropy.toString('base64url', entropyAt, entropyAt + 16);
  entropyAt += 16;
  return id;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
/** Pool identities: no `:` (the separator of the key parts around them), no `|` (it ends the pool in a
 *  session key; ids hold none either), no braces (hash tags); `/` allowed (namespace/name). 317 = a
 *  63-character namespace, `/`, a 253-character name. */
const POOL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,316}$/;
/** Kubernetes namespace (DNS-1123 label) and object name (DNS-1123 subdomain): neither holds a `/`. */
const NAMESPACE_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const OBJECT_NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function assertSessionId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new InvalidSessionIdError(`invalid session id ${JSON.stringify(typeof id === 'string' ? id.slice(0, 80) : typeof id)}`);
  }
}

/** Owner, worker and migration names: no braces (hash tags), no spaces, 1 to 253 chars. Pool
 *  identities follow assertPoolId. */
export function assertName(kind: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new InvalidNameError(`invalid ${kind} name ${JSON.stringify(typeof name === 'string' ? name.slice(0, 80) : typeof name)}`);
  }
}

/** A pool identity as the store takes it: 1 to 317 characters of letters, digits, `.`, `_`, `-`, `/`. */
export function assertPoolId(pool: unknown): asserts pool is string {
  if (typeof pool !== 'string' || !POOL_PATTERN.test(pool)) {
    throw new InvalidNameError(`invalid pool name ${JSON.stringify(typeof pool === 'string' ? pool.slice(0, 80) : typeof pool)}`);
  }
}

/**
 * The identity of the SessionPool `name` in `namespace`, as every store key, worker registration,
 * session header and migration journal of the pool names it: `<namespace>/<name>`. A namespace
 * and a name never hold `/`, so the first `/` splits it back: two pools that differ in namespace
 * or name never share an identity (`a-b/c` and `a/b-c` are distinct). The one place it is built.
 */
export function poolIdentity(namespace: string, name: string): string {
  if (!NAMESPACE_PATTERN.test(namespace))
    throw new InvalidNameError(`invalid namespace ${JSON.stringify(namespace.slice(0, 80))}: not a DNS-1123 label`);
  if (!OBJECT_NAME_PATTERN.test(name))
    throw new InvalidNameError(`invalid pool name ${JSON.stringify(name.slice(0, 80))}: not a DNS-1123 subdomain`);
  return `${namespace}/${name}`;
}

/** Index buckets per pool. A pool's indexes are split over this many hash tags (`{pool:<pool>#<b>}`), so
 *  that creates and deletes spread over the cluster's masters instead of all going through one slot. Fixed:
 *  changing it would orphan entries in the buckets it drops. */
export const INDEX_BUCKETS = 16;

/** The index bucket of a session id: CRC16/XMODEM (the cluster's key hash) of its bytes, modulo INDEX_BUCKETS. */
export function indexBucket(id: string): number {
  let crc = 0;
  for (let i = 0; i < id.length; i++) crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ id.charCodeAt(i)) & 0xff] ?? 0);
  return crc % INDEX_BUCKETS;
}

/** A bucket number, or a pattern's placeholder for any bucket (acl.ts). */
export type Bucket = number | string;

export interface KeyLayout {
  prefix: string;
  /** A session of `pool`: `<prefix>:s:{<pool>|<id>}`. Neither a pool identity nor an id holds `|`, so
   *  the pool part ends at the first `|`: a session key names its pool, and the same id in two pools is
   *  two keys. */
  session(pool: string, id: string): string;
  quarantine(pool: string, id: string): string;
  /** Bucket `b` of the pool index, lease index, owner list and owner indexes: all in slot `{pool:<pool>#<b>}`
   *  (`#` is in no pool identity, so the pool part ends there). A session's entries are in bucket indexBucket(id). */
  poolIndex(pool: string, bucket: Bucket): string;
  leaseIndex(pool: string, bucket: Bucket): string;
  owners(pool: string, bucket: Bucket): string;
  ownerIndex(pool: string, owner: string, bucket: Bucket): string;
  workers(pool: string): string;
  /** The index keys before buckets (one slot `{pool:<pool>}`, owner indexes `{pool:<pool>:owner:<owner>}`):
   *  only read, to move their entries into the buckets (index-layout.ts). */
  legacy: {
    poolIndex(pool: string): string;
    leaseIndex(pool: string): string;
    owners(pool: string): string;
    ownerIndex(pool: string, owner: string): string;
  };
}

export function keyLayout(prefix = 'spo'): KeyLayout {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new InvalidNameError(`invalid key prefix ${JSON.stringify(prefix)}`);
  return {
    prefix,
    session: (pool, id) => `${prefix}:s:{${pool}|${id}}`,
    quarantine: (pool, id) => `${prefix}:q:{${pool}|${id}}`,
    poolIndex: (pool, bucket) => `${prefix}:{pool:${pool}#${bucket}}:sessions`,
    leaseIndex: (pool, bucket) => `${prefix}:{pool:${pool}#${bucket}}:leases`,
    owners: (pool, bucket) => `${prefix}:{pool:${pool}#${bucket}}:owners`,
    ownerIndex: (pool, owner, bucket) => `${prefix}:{pool:${pool}#${bucket}}:owner:${owner}`,
    workers: (pool) => `${prefix}:{pool:${pool}}:workers`,
    legacy: {
      poolIndex: (pool) => `${prefix}:{pool:${pool}}:sessions`,
      leaseIndex: (pool) => `${prefix}:{pool:${pool}}:leases`,
      owners: (pool) => `${prefix}:{pool:${pool}}:owners`,
      ownerIndex: (pool, owner) => `${prefix}:{pool:${pool}:owner:${owner}}:sessions`,
    },
  };
}

// CRC16/XMODEM, the Redis Cluster key hash.
const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/** The cluster slot of a key: the hash tag's content when the key has a non-empty `{...}`. ASCII keys (every
 *  key the store builds) are hashed from their characters, without making a byte array. */
export function keySlot(key: string): number {
  let start = 0;
  let end = key.length;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) return crc16(Buffer.from(key.slice(start, end), 'utf8')) % 16384;
    crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ c) & 0xff] ?? 0);
  }
  return crc % 16384;
}
