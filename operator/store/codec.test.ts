import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { CorruptRecord, RECORD_FIELDS, SCHEMA_VERSION, assertTtl, checksum, decodeRecord, encodeData, unpackRecord } from './codec.ts';
import { InvalidSessionDataError, InvalidTtlError, SessionTooLargeError } from './errors.ts';
import type { JsonValue } from './types.ts';

function reply(overrides: Partial<Record<(typeof RECORD_FIELDS)[number], string | null>> = {}): (string | null)[] {
  const data = JSON.stringify({ a: 1 });
  const base: Record<string, string | null> = {
    pool: 'p',
    data,
    v: '3',
    ca: '1000',
    la: '2000',
    ttl: '60',
    anon: '0',
    own: 'w',
    ep: '2',
    mov: '',
    lease: '5000',
    cs: checksum(data),
    sv: SCHEMA_VERSION,
  };
  return RECORD_FIELDS.map((f) => (f in overrides ? (overrides[f] ?? null) : (base[f] ?? null)));
}

describe('store codec', () => {
  it('serializes JSON data with a sha-256 checksum prefix', () => {
    const { serialized, checksum: cs } = encodeData({ b: [1, 'x', null, true] }, 1000);
    expect(serialized).to.equal('{"b":[1,"x",null,true]}');
    expect(cs).to.match(/^[0-9a-f]{32}$/);
    expect(cs).to.equal(checksum(serialized));
  });

  it('refuses non-JSON data and data over the size limit', () => {
    const bad: unknown[] = [undefined, () => 1, NaN, Infinity, 10n, Symbol('s'), new Date(), { x: undefined }, [1, () => 2], new Map()];
    for (const value of bad) expect(() => encodeData(value, 1000), String(value)).to.throw(InvalidSessionDataError);
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    expect(() => encodeData(cyclic, 1000)).to.throw(InvalidSessionDataError);
    const shared = { s: 1 };
    expect(() => encodeData({ a: shared, b: shared }, 1000)).to.not.throw();
    expect(() => encodeData('é'.repeat(600), 1000)).to.throw(SessionTooLargeError);
    expect(() => encodeData('x'.repeat(998), 1000)).to.not.throw();
  });

  it('validates TTLs', () => {
    for (const ttl of [0, -1, 1.5, NaN, '60', 10 ** 12]) expect(() => assertTtl(ttl)).to.throw(InvalidTtlError);
    expect(() => assertTtl(1)).to.not.throw();
  });

  it('decodes a stored hash and rejects checksum and schema mismatches', () => {
    const record = decodeRecord('id', reply());
    expect(record).to.deep.equal({
      id: 'id',
      pool: 'p',
      data: { a: 1 } as JsonValue,
      version: 3,
      createdAt: 1000,
      lastAccessedAt: 2000,
      ttlSeconds: 60,
      anonymous: false,
      owner: 'w',
      epoch: 2,
      movingBy: null,
      checksum: checksum(JSON.stringify({ a: 1 })),
    });
    expect(decodeRecord('id', reply({ own: '', mov: 'm' }))).to.include({ owner: null, movingBy: 'm' });
    expect(() => decodeRecord('id', reply({ data: '{"a":2}' }))).to.throw(CorruptRecord, /checksum/);
    expect(() => decodeRecord('id', reply({ sv: '1' }))).to.throw(CorruptRecord, /schema/);
    expect(() => decodeRecord('id', reply({ v: 'x' }))).to.throw(CorruptRecord, /v/);
    expect(() => decodeRecord('id', reply({ ep: null }))).to.throw(CorruptRecord, /ep/);
    expect(() => decodeRecord('id', reply({ anon: 'yes' }))).to.throw(CorruptRecord, /anon/);
    expect(() => decodeRecord('id', reply({ data: '{bad', cs: checksum('{bad') }))).to.throw(CorruptRecord, /JSON/);
  });

  it('unpacks the {header, data} record reply of the scripts, refusing other shapes', () => {
    const data = '{"a":1}';
    const header = ['pool-a', '3', '10', '11', '60', '0', 'pod-a', '2', '', '99', checksum(data), SCHEMA_VERSION, 'wid-1'].join('\n');
    const fields = unpackRecord([header, data]);
    expect(fields).to.deep.equal(['pool-a', data, '3', '10', '11', '60', '0', 'pod-a', '2', null, '99', checksum(data), SCHEMA_VERSION]);
    expect(decodeRecord('id', fields!)).to.include({ pool: 'pool-a', version: 3, owner: 'pod-a', epoch: 2, movingBy: null });
    expect(unpackRecord([header, null])?.[1]).to.equal(null);
    expect(unpackRecord([`${header}\nextra`, data])).to.equal(null);
    expect(unpackRecord(['a\nb', data])).to.equal(null);
    expect(unpackRecord([header.slice(0, header.lastIndexOf('\n')), data])).to.equal(null); // twelve parts: no wid
    expect(unpackRecord([1, data])).to.equal(null);
    expect(unpackRecord('x')).to.equal(null);
  });

  it('checksums with the one-shot hash exactly as sha-256 hex prefixes', () => {
    for (const text of ['', '{}', 'é'.repeat(300), JSON.stringify({ blob: 'x'.repeat(5000) })]) {
      expect(checksum(text)).to.equal(createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32));
    }
  });
});
