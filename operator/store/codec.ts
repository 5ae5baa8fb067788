// Serialization, checksum and validation of session data and of the stored hash. Pure.
import { hash } from 'node:crypto';
import { InvalidSessionDataError, InvalidTtlError, SessionTooLargeError } from './errors.ts';
import type { JsonValue, SessionRecord } from './types.ts';

/** Version of the stored hash's layout, part `sv` of the header. A reader refuses any other. 2: the packed
 *  layout (hash fields `m`, the header, and `d`, the data); 1 was one hash field per value. */
export const SCHEMA_VERSION = '2';

/** A record decoded field by field (decodeRecord): the header parts with the data second, without `wid`. */
export const RECORD_FIELDS = ['pool', 'data', 'v', 'ca', 'la', 'ttl', 'anon', 'own', 'ep', 'mov', 'lease', 'cs', 'sv'] as const;

/** The parts of the stored header (hash field `m`), joined by '\n', in this order. */
export const HEADER_PARTS = ['pool', 'v', 'ca', 'la', 'ttl', 'anon', 'own', 'ep', 'mov', 'lease', 'cs', 'sv', 'wid'] as const;
/** Index of each header part. */
export const H = Object.fromEntries(HEADER_PARTS.map((name, i) => [name, i])) as Record<(typeof HEADER_PARTS)[number], number>;

/** The parts of a stored header; null when it is missing or has not exactly HEADER_PARTS.length parts. */
export function splitHeader(header: string | null | undefined): string[] | null {
  if (typeof header !== 'string') return null;
  const parts = header.split('\n');
  return parts.length === HEADER_PARTS.length ? parts : null;
}

export const MAX_TTL_SECONDS = 365 * 24 * 3600;

/** First 32 hex characters (128 bits) of the sha-256 of the serialized data. */
export function checksum(serialized: string): string {
  // One-shot hash: no Hash object per call (the same digest as createHash('sha256')).
  return hash('sha256', serialized, 'hex').slice(0, 32);
}

/** True when value is plain JSON data (the hot path: no allocation per node). */
function isJson(value: unknown, depth: number, stack: object[]): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value !== 'object') return false;
  if (stack.includes(value)) return false;
  if (depth > 256) return false; // deep nesting: let the path-naming walk decide
  stack.push(value);
  let ok = true;
  if (Array.isArray(value)) {
    for (let i = 0; ok && i < value.length; i++) ok = isJson(value[i], depth + 1, stack);
  } else {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) ok = false;
    else {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (!isJson(record[key], depth + 1, stack)) {
          ok = false;
          break;
        }
      }
    }
  }
  stack.pop();
  return ok;
}

/** The slow walk that names the offending path; run only when isJson said no. */
function assertJson(value: unknown, path: string, seen: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidSessionDataError(`data${path} is a non-finite number`);
    return;
  }
  if (typeof value !== 'object') throw new InvalidSessionDataError(`data${path} is a ${typeof value}, not JSON`);
  if (seen.has(value)) throw new InvalidSessionDataError(`data${path} is a cycle`);
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertJson(item, `${path}[${i}]`, seen));
  } else {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) throw new InvalidSessionDataError(`data${path} is not a plain object`);
    for (const [key, item] of Object.entries(value)) assertJson(item, `${path}.${key}`, seen);
  }
  seen.delete(value);
}

/** Validates and serializes data; throws a typed error for non-JSON data or data over maxBytes. */
export function encodeData(data: unknown, maxBytes: number): { serialized: string; checksum: string } {
  if (!isJson(data, 0, [])) assertJson(data, '', new Set());
  const serialized = JSON.stringify(data);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: count exactly only when that bound is over the limit.
  if (serialized.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(serialized, 'utf8');
    if (bytes > maxBytes) throw new SessionTooLargeError(bytes, maxBytes);
  }
  return { serialized, checksum: checksum(serialized) };
}

export function assertTtl(ttlSeconds: unknown): asserts ttlSeconds is number {
  if (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new InvalidTtlError(`invalid TTL ${String(ttlSeconds)}: an integer number of seconds from 1 to ${MAX_TTL_SECONDS}`);
  }
}

/** Why a stored hash is refused; the reader quarantines it. */
export class CorruptRecord extends Error {}

const INT = /^-?\d{1,16}$/;

function int(reply: (string | null)[], index: number, name: string): number {
  const value = reply[index];
  if (value == null || !INT.test(value)) throw new CorruptRecord(`field ${name} is ${value == null ? 'missing' : 'not an integer'}`);
  return Number(value);
}

/** Decodes a record in RECORD_FIELDS order (see unpackRecord); throws CorruptRecord on any mismatch. */
export function decodeRecord(id: string, reply: (string | null)[], alreadyVerified?: (data: string, cs: string) => boolean): SessionRecord {
  const [pool, data, , , , , anon, owner, , moving, , cs, sv] = reply;
  if (sv !== SCHEMA_VERSION) throw new CorruptRecord(`schema version ${sv ?? 'missing'}`);
  if (!pool) throw new CorruptRecord('field pool is missing');
  if (data == null) throw new CorruptRecord('field data is missing');
  if (cs == null) throw new CorruptRecord('field cs is missing');
  if (anon !== '0' && anon !== '1') throw new CorruptRecord('field anon is not 0 or 1');
  // A byte-identical data string with the same checksum was hashed and checked before: skip the hash.
  if (!alreadyVerified?.(data, cs) && checksum(data) !== cs) throw new CorruptRecord('checksum mismatch');
  let parsed: JsonValue;
  try {
    parsed = JSON.parse(data) as JsonValue;
  } catch {
    throw new CorruptRecord('data is not JSON');
  }
  return {
    id,
    pool,
    data: parsed,
    version: int(reply, 2, 'v'),
    createdAt: int(reply, 3, 'ca'),
    lastAccessedAt: int(reply, 4, 'la'),
    ttlSeconds: int(reply, 5, 'ttl'),
    anonymous: anon === '1',
    owner: owner ? owner : null,
    epoch: int(reply, 8, 'ep'),
    movingBy: moving ? moving : null,
    checksum: cs,
  };
}

/** The fields (RECORD_FIELDS order) of a record `{header, data}` (the hash fields `m` and `d`, as a plain
 *  HMGET or a script returns them): header holds the thirteen HEADER_PARTS joined by '\n', an empty part read
 *  as missing. Null when the reply does not have that shape. */
export function unpackRecord(reply: unknown): (string | null)[] | null {
  if (!Array.isArray(reply) || reply.length < 1 || reply.length > 2) return null;
  const [header, data] = reply as unknown[];
  if (typeof header !== 'string' || (data != null && typeof data !== 'string')) return null;
  const parts = splitHeader(header);
  if (parts === null) return null;
  const fields: (string | null)[] = new Array<string | null>(RECORD_FIELDS.length);
  fields[0] = parts[0] || null;
  fields[1] = data == null ? null : data;
  for (let i = 1; i < RECORD_FIELDS.length - 1; i++) fields[i + 1] = parts[i] || null;
  return fields;
}

/** Lease expiry (ms) from the same reply; 0 when unowned. */
export function leaseOf(reply: (string | null)[]): number {
  const value = reply[10];
  return value && INT.test(value) ? Number(value) : 0;
}
