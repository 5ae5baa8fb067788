import { expect } from 'chai';
import { crc32 } from 'node:zlib';
import {
  CorruptRecord,
  H,
  HEADER_PARTS,
  SCHEMA_VERSION,
  assertTtl,
  checksum,
  decodeStored,
  encodeData,
  splitValue,
  withData,
  withHeaderParts,
  writeSegments,
} from './codec.ts';
import { InvalidSessionDataError, InvalidTtlError, SessionTooLargeError } from './errors.ts';
import type { JsonValue } from './types.ts';

const DATA = JSON.stringify({ a: 1 });

/** A stored header with some parts replaced. */
function header(overrides: Partial<Record<(typeof HEADER_PARTS)[number], string>> = {}): string {
  const base: Record<(typeof HEADER_PARTS)[number], string> = {
    pool: 'p',
    v: '3',
    ca: '1000',
    la: '2000',
    ttl: '60',
    anon: '0',
    own: 'w',
    ep: '2',
    mov: '',
    lease: '5000',
    cs: checksum(DATA),
    sv: SCHEMA_VERSION,
    wid: 'wid-1',
  };
  return HEADER_PARTS.map((part) => overrides[part] ?? base[part]).join('\n');
}

describe('store codec', () => {
  it('serializes JSON data with its checksum', () => {
    const { serialized, checksum: cs } = encodeData({ b: [1, 'x', null, true] }, 1000);
    expect(serialized).to.equal('{"b":[1,"x",null,true]}');
    expect(cs).to.match(/^[0-9a-f]{8}$/);
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

  it('decodes a stored session and rejects checksum and schema mismatches', () => {
    const stored = decodeStored('id', header(), DATA);
    expect(stored).to.deep.equal({
      record: {
        id: 'id',
        pool: 'p',
        version: 3,
        createdAt: 1000,
        lastAccessedAt: 2000,
        ttlSeconds: 60,
        anonymous: false,
        owner: 'w',
        epoch: 2,
        movingBy: null,
        checksum: checksum(DATA),
      },
      serialized: DATA,
      leaseExpiresAt: 5000,
      header: header(),
      segments: undefined,
    });
    expect(withData(stored)).to.deep.equal({ ...stored.record, data: { a: 1 } as JsonValue });
    expect(decodeStored('id', header({ own: '', mov: 'm', lease: '0' }), DATA).record).to.include({ owner: null, movingBy: 'm' });
    expect(() => decodeStored('id', header(), '{"a":2}')).to.throw(CorruptRecord, /checksum/);
    expect(() => decodeStored('id', header({ sv: '1' }), DATA)).to.throw(CorruptRecord, /schema/);
    expect(() => decodeStored('id', header({ v: 'x' }), DATA)).to.throw(CorruptRecord, /field v is not an integer/);
    expect(() => decodeStored('id', header({ ep: '' }), DATA)).to.throw(CorruptRecord, /field ep is missing/);
    expect(() => decodeStored('id', header({ anon: 'yes' }), DATA)).to.throw(CorruptRecord, /anon/);
    expect(() => decodeStored('id', header(), null)).to.throw(CorruptRecord, /data is missing/);
    expect(() => withData(decodeStored('id', header({ cs: checksum('{bad') }), '{bad'))).to.throw(CorruptRecord, /JSON/);
  });

  it('refuses headers that do not have exactly the thirteen parts', () => {
    const good = header();
    expect(() => decodeStored('id', `${good}\nextra`, DATA)).to.throw(CorruptRecord, /header/);
    expect(() => decodeStored('id', 'a\nb', DATA)).to.throw(CorruptRecord, /header/);
    expect(() => decodeStored('id', good.slice(0, good.lastIndexOf('\n')), DATA)).to.throw(CorruptRecord, /header/); // no wid
    expect(() => decodeStored('id', 1, DATA)).to.throw(CorruptRecord, /header/);
    expect(() => decodeStored('id', null, DATA)).to.throw(CorruptRecord, /header/);
  });

  it('skips the hash only for data the caller vouches for, byte for byte', () => {
    const tampered = '{"a":2}';
    // A vouching callback that accepts exactly (tampered, its claimed checksum) lets it through ...
    expect(decodeStored('id', header(), tampered, (data, cs) => data === tampered && cs === checksum(DATA)).serialized).to.equal(tampered);
    // ... and one that does not vouch leaves the hash to catch it.
    expect(() => decodeStored('id', header(), tampered, () => false)).to.throw(CorruptRecord, /checksum/);
  });

  it('replaces header parts in one pass, first, middle and last alike', () => {
    const h = header();
    const expected = (changes: [number, string][]) => {
      const parts = h.split('\n');
      for (const [i, v] of changes) parts[i] = v;
      return parts.join('\n');
    };
    for (const changes of [
      [[0, 'pool-b']],
      [[H.wid, 'w-2']],
      [
        [H.v, '4'],
        [H.cs, 'deadbeef'],
        [H.wid, 'w-3'],
      ],
      [
        [H.la, '3000'],
        [H.ttl, ''],
      ],
      [],
    ] as [number, string][][]) {
      expect(withHeaderParts(h, changes)).to.equal(expected(changes));
    }
  });

  it('cuts a header around the parts a data write changes, and puts it back together', () => {
    const h = header({ la: '1790000000000' });
    const { beforeV, beforeCs, beforeWid, laAt } = writeSegments(h);
    expect(beforeV + '3' + beforeCs + checksum(DATA) + beforeWid + 'wid-1').to.equal(h);
    expect(beforeV + '4' + beforeCs + 'deadbeef' + beforeWid + 'w-2').to.equal(
      withHeaderParts(h, [
        [H.v, '4'],
        [H.cs, 'deadbeef'],
        [H.wid, 'w-2'],
      ]),
    );
    expect(beforeCs.slice(laAt, laAt + 13)).to.equal('1790000000000');
    expect(writeSegments(header({ la: '2000' })).laAt).to.equal(-1); // not 13 digits: not overwritten in place
  });

  it('checksums as CRC-32 of the UTF-8 bytes, 8 hex digits (the check value of the standard)', () => {
    expect(checksum('123456789')).to.equal('cbf43926');
    expect(checksum('')).to.equal('00000000');
    for (const text of ['{}', 'é'.repeat(300), '😀', JSON.stringify({ blob: 'x'.repeat(5000) })]) {
      expect(checksum(text)).to.equal(crc32(Buffer.from(text, 'utf8')).toString(16).padStart(8, '0'));
    }
  });

  it('cuts a stored value into header and data, the data keeping any newline of its own', () => {
    const value = `${header()}\n{"text":"a\nb"}\nmore`;
    expect(splitValue(value)).to.deep.equal({ header: header(), data: '{"text":"a\nb"}\nmore' });
    expect(splitValue(`${header()}\n`)).to.deep.equal({ header: header(), data: '' });
    expect(splitValue(header())).to.equal(null); // twelve newlines: no end to the header
    expect(splitValue('')).to.equal(null);
    expect(splitValue(null)).to.equal(null);
    expect(splitValue('no header at all')).to.equal(null);
  });
});
