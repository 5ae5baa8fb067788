// Serialization, checksum and validation of session data and of the stored hash. Pure.
import { crc32 } from 'node:zlib';
import { InvalidSessionDataError, InvalidTtlError, SessionTooLargeError } from './errors.ts';
import type { JsonValue, SessionRecord } from './types.ts';

/** Version of the stored layout, part `sv` of the header. A reader refuses any other. 5: session keys
 *  name the pool (`<prefix>:s:{<pool>|<id>}`, keys.ts); 4: the pool part holds `<namespace>/<name>`;
 *  3: one string per session, the header then the data, with a CRC-32 checksum; 2 was a hash of two
 *  fields (`m`, `d`) with a sha-256 prefix as checksum; 1 was one hash field per value. */
export const SCHEMA_VERSION = '5';

/** The parts of the stored header, joined by '\n', in this order; the stored value is the header, '\n', the data. */
export const HEADER_PARTS = ['pool', 'v', 'ca', 'la', 'ttl', 'anon', 'own', 'ep', 'mov', 'lease', 'cs', 'sv', 'wid'] as const;
/** Index of each header part. */
export const H = Object.fromEntries(HEADER_PARTS.map((name, i) => [name, i])) as Record<(typeof HEADER_PARTS)[number], number>;

/** The parts of a stored header; null when it is missing or has not exactly HEADER_PARTS.length parts. */
export function splitHeader(header: string | null | undefined): string[] | null {
  if (typeof header !== 'string') return null;
  const parts = header.split('\n');
  return parts.length === HEADER_PARTS.length ? parts : null;
}

/** A stored value cut into its header and its data (everything after the header's newline, which may hold
 *  newlines of its own); null when the value does not hold HEADER_PARTS.length newline-ended parts. Also
 *  takes a prefix of a value (GETRANGE) that holds the whole header: the data is then cut short. */
export function splitValue(value: string | null | undefined): { header: string; data: string } | null {
  if (typeof value !== 'string') return null;
  let at = -1;
  for (let i = 0; i < HEADER_PARTS.length; i++) {
    at = value.indexOf('\n', at + 1);
    if (at === -1) return null;
  }
  return { header: value.slice(0, at), data: value.slice(at + 1) };
}

/** Bounds the longest header: a pool identity of at most 317 characters, owner and migration names of at
 *  most 253, integers of at most 16 digits, write ids of at most 64 characters: at most 1006 bytes. Reading this many bytes of a value (GETRANGE 0 HEADER_MAX_BYTES-1)
 *  always gets the whole header. */
export const HEADER_MAX_BYTES = 1024;

export const MAX_TTL_SECONDS = 365 * 24 * 3600;

/** CRC-32 (the zlib/IEEE polynomial) of the serialized data's UTF-8 bytes: 8 lower-case hex digits. It is
 *  there to detect corruption (truncation, bit rot, a stray write), which it does as well as a cryptographic
 *  hash at a third of the cost; it does not guard against a writer who means harm (any such writer with
 *  access to Redis could recompute any checksum). */
export function checksum(serialized: string): string {
  return crc32(serialized).toString(16).padStart(8, '0');
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

/** Why a stored session is refused; the reader quarantines it. */
export class CorruptRecord extends Error {}

const INT = /^-?\d{1,16}$/;

function int(parts: string[], index: number): number {
  const value = parts[index]!;
  if (!INT.test(value)) throw new CorruptRecord(`field ${HEADER_PARTS[index]} is ${value === '' ? 'missing' : 'not an integer'}`);
  return Number(value);
}

/** A stored session as read and checked: its record without the data, the data as stored, and the lease
 *  expiry (ms, 0 when unowned). The degraded-mode cache keeps exactly this; callers get copies (withData). */
export interface StoredSession {
  record: Omit<SessionRecord, 'data'>;
  serialized: string;
  leaseExpiresAt: number;
  /** The stored header exactly as read, or '' when not known (a record made locally in degraded mode).
   *  An update may offer it as the expected header of its fast path (WRITE_IF_HEADER in docs/store.md). */
  header: string;
  /** The header cut around the parts a data write changes, made when first needed (writeSegments). */
  segments: WriteSegments | undefined;
}

/** A header cut around the parts every data write changes (v, cs and wid):
 *  header = beforeV + v + beforeCs + cs + beforeWid + wid; a data write keeps the segments. `laAt` is where
 *  `la` starts within beforeCs when it has 13 digits (so that a new time can overwrite it in place), else -1. */
export interface WriteSegments {
  beforeV: string;
  beforeCs: string;
  beforeWid: string;
  laAt: number;
}

export function writeSegments(header: string): WriteSegments {
  const parts = header.split('\n');
  const la = parts[H.la] ?? '';
  return {
    beforeV: `${parts[H.pool]}\n`,
    beforeCs: `\n${parts.slice(H.ca, H.cs).join('\n')}\n`,
    beforeWid: `\n${parts[H.sv]}\n`,
    laAt: /^\d{13}$/.test(la) ? 2 + (parts[H.ca] ?? '').length : -1,
  };
}

/** Decodes a stored session from its header and data (a value cut by splitValue, or a header a script
 *  returned with the data the caller wrote);
 *  throws CorruptRecord on any mismatch. `alreadyVerified(data, cs)` may vouch for data this process has
 *  hashed before (byte-identical, same checksum), which then is not hashed again. */
export function decodeStored(
  id: string,
  header: unknown,
  data: unknown,
  alreadyVerified?: (data: string, cs: string) => boolean,
): StoredSession {
  const parts = splitHeader(typeof header === 'string' ? header : null);
  if (parts === null) throw new CorruptRecord('header is malformed');
  const [pool, , , , , anon, owner, , moving, lease, cs, sv] = parts as [string, ...string[]];
  if (sv !== SCHEMA_VERSION) throw new CorruptRecord(`schema version ${sv || 'missing'}`);
  if (!pool) throw new CorruptRecord('field pool is missing');
  if (typeof data !== 'string') throw new CorruptRecord('field data is missing');
  if (!cs) throw new CorruptRecord('field cs is missing');
  if (anon !== '0' && anon !== '1') throw new CorruptRecord('field anon is not 0 or 1');
  if (!alreadyVerified?.(data, cs) && checksum(data) !== cs) throw new CorruptRecord('checksum mismatch');
  return {
    record: {
      id,
      pool,
      version: int(parts, H.v),
      createdAt: int(parts, H.ca),
      lastAccessedAt: int(parts, H.la),
      ttlSeconds: int(parts, H.ttl),
      anonymous: anon === '1',
      owner: owner ? owner : null,
      epoch: int(parts, H.ep),
      movingBy: moving ? moving : null,
      checksum: cs,
    },
    serialized: data,
    leaseExpiresAt: lease && INT.test(lease) ? Number(lease) : 0,
    header: header as string,
    segments: undefined,
  };
}

/** A stored header with some of its parts replaced: [index in HEADER_PARTS order, value] pairs, in
 *  ascending order of index. One pass over the header; nothing split or joined. */
export function withHeaderParts(header: string, changes: readonly (readonly [number, string])[]): string {
  let out = '';
  let copied = 0; // header[0, copied) is in out, or replaced
  let part = 0;
  let start = 0; // where part `part` starts
  for (const [index, value] of changes) {
    for (; part < index; part++) start = header.indexOf('\n', start) + 1;
    const end = header.indexOf('\n', start);
    out += header.slice(copied, start) + value;
    copied = end === -1 ? header.length : end;
  }
  return out + header.slice(copied);
}

/** The record of a stored session with a fresh copy of its data; CorruptRecord when the data is not JSON. */
export function withData(stored: StoredSession): SessionRecord {
  let data: JsonValue;
  try {
    data = JSON.parse(stored.serialized) as JsonValue;
  } catch {
    throw new CorruptRecord('data is not JSON');
  }
  return { ...stored.record, data };
}
