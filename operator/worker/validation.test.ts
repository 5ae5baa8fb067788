import { expect } from 'chai';
import { WorkerError } from './errors.ts';
import {
  MAX_JSON_DEPTH,
  checkTtl,
  decodePathSegment,
  nonFiniteNumberAt,
  parseJsonBody,
  validateAnonymous,
  validateCreate,
  validateExecute,
  validateMode,
  validateSessionId,
} from './validation.ts';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof WorkerError ? `${error.code}:${error.status}` : 'OTHER';
  }
  return 'NONE';
}

describe('worker request validation', () => {
  it('accepts valid bodies', () => {
    expect(validateCreate({})).to.deep.equal({});
    expect(validateCreate({ data: { a: 1 }, ttlSeconds: 60 })).to.deep.equal({ data: { a: 1 }, ttlSeconds: 60 });
    expect(validateExecute({ handler: 'incr', args: { key: 'n' } }).handler).to.equal('incr');
    expect(validateAnonymous({ handler: 'get', data: {} }).handler).to.equal('get');
    expect(validateMode({ mode: 'Dual' }).mode).to.equal('Dual');
  });

  it('refuses invalid bodies with 400 and names the field', () => {
    expect(codeOf(() => validateCreate({ data: [1] }))).to.equal('INVALID_REQUEST:400');
    expect(codeOf(() => validateCreate({ ttlSeconds: 0 }))).to.equal('INVALID_REQUEST:400');
    expect(codeOf(() => validateExecute({}))).to.equal('INVALID_REQUEST:400');
    expect(codeOf(() => validateMode({ mode: 'Local' }))).to.equal('INVALID_REQUEST:400');
    try {
      validateExecute({ handler: 'incr', extra: true });
    } catch (error) {
      expect((error as Error).message).to.match(/additional properties.*extra/);
    }
  });

  it('parses JSON and refuses malformed text', () => {
    expect(parseJsonBody('{"a":1}')).to.deep.equal({ a: 1 });
    expect(parseJsonBody('  ', {})).to.deep.equal({});
    expect(codeOf(() => parseJsonBody('{nope'))).to.equal('INVALID_JSON:400');
    expect(codeOf(() => parseJsonBody(''))).to.equal('INVALID_JSON:400');
  });

  it('checks session ids', () => {
    expect(validateSessionId('AAAAAAAAAAAAAAAAAAAAAA')).to.equal('AAAAAAAAAAAAAAAAAAAAAA');
    expect(codeOf(() => validateSessionId('short'))).to.equal('INVALID_SESSION_ID:400');
    expect(codeOf(() => validateSessionId('a/b..AAAAAAAAAAAAAAAAAAAAAA'))).to.equal('INVALID_SESSION_ID:400');
  });

  it('refuses nesting deeper than the limit, counting brackets outside strings only', () => {
    const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
    expect(parseJsonBody(nest(MAX_JSON_DEPTH))).to.be.an('array');
    expect(codeOf(() => parseJsonBody(nest(MAX_JSON_DEPTH + 1)))).to.equal('INVALID_JSON:400');
    expect(codeOf(() => parseJsonBody(nest(1_000_000)))).to.equal('INVALID_JSON:400');
    // Brackets inside strings, also after an escaped quote, are text.
    const text = JSON.stringify({ s: '"\\' + '['.repeat(500), t: '\\"{{{{' });
    expect(parseJsonBody(text)).to.deep.equal(JSON.parse(text));
  });

  it('refuses numbers that JSON.parse turns into Infinity, naming where', () => {
    expect(codeOf(() => parseJsonBody('{"data":{"x":1e999}}'))).to.equal('INVALID_JSON:400');
    expect(() => parseJsonBody('{"a":[1,{"b/c":-1e400}]}')).to.throw(/the number at \/a\/1\/b~1c /);
    expect(nonFiniteNumberAt(1e308)).to.equal(undefined);
    expect(nonFiniteNumberAt(Infinity)).to.equal('');
    expect(parseJsonBody('{"x":1e-999,"y":1.7976931348623157e308}')).to.deep.equal({ x: 0, y: Number.MAX_VALUE });
  });

  it('decodes path segments and refuses malformed percent-encoding with 400', () => {
    expect(decodePathSegment('abc%2Dd')).to.equal('abc-d');
    expect(codeOf(() => decodePathSegment('%E0%A4%A'))).to.equal('INVALID_SESSION_ID:400');
    expect(codeOf(() => decodePathSegment('%'))).to.equal('INVALID_SESSION_ID:400');
  });

  it("refuses a TTL above the pool's maximum, naming the limit", () => {
    expect(() => checkTtl(3600, 3600)).to.not.throw();
    expect(() => checkTtl(undefined, 60)).to.not.throw();
    expect(() => checkTtl(3601, 3600)).to.throw(WorkerError, /maximum of 3600 seconds/);
  });
});
