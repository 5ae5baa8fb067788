import { expect } from 'chai';
import { WorkerError } from './errors.ts';
import { parseJsonBody, validateAnonymous, validateCreate, validateExecute, validateMode, validateSessionId } from './validation.ts';

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
});
