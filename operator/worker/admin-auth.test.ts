import { expect } from 'chai';
import { bearerToken, checkAdminAuthorization, tokensEqual } from './admin-auth.ts';
import { WorkerError } from './errors.ts';

const TOKEN = '0123456789abcdef0123456789abcdef';

function refusal(configured: string | undefined, authorization: string | undefined): { status: number; code: string } | undefined {
  try {
    checkAdminAuthorization(configured, authorization);
    return undefined;
  } catch (error) {
    if (error instanceof WorkerError) return { status: error.status, code: error.code };
    throw error;
  }
}

describe('worker admin authorization', () => {
  it('lets the right bearer token through', () => {
    expect(refusal(TOKEN, `Bearer ${TOKEN}`)).to.equal(undefined);
    expect(refusal(TOKEN, `bearer  ${TOKEN} `)).to.equal(undefined);
  });

  it('answers 401 UNAUTHORIZED without a bearer token', () => {
    expect(refusal(TOKEN, undefined)).to.deep.equal({ status: 401, code: 'UNAUTHORIZED' });
    expect(refusal(TOKEN, '')).to.deep.equal({ status: 401, code: 'UNAUTHORIZED' });
    expect(refusal(TOKEN, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`)).to.deep.equal({
      status: 401,
      code: 'UNAUTHORIZED',
    });
    expect(refusal(TOKEN, 'Bearer ')).to.deep.equal({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('answers 403 FORBIDDEN for a wrong token, a prefix of it, or a longer one', () => {
    expect(refusal(TOKEN, 'Bearer wrong-token-wrong-token')).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
    expect(refusal(TOKEN, `Bearer ${TOKEN.slice(0, -1)}`)).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
    expect(refusal(TOKEN, `Bearer ${TOKEN}0`)).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
  });

  it('refuses every admin call (403) on a worker without a token: never open by default', () => {
    expect(refusal(undefined, undefined)).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
    expect(refusal(undefined, 'Bearer anything-at-all-here')).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
    expect(refusal('', 'Bearer ')).to.deep.equal({ status: 403, code: 'FORBIDDEN' });
  });

  it('parses the bearer scheme only', () => {
    expect(bearerToken('Bearer abc')).to.equal('abc');
    expect(bearerToken('Token abc')).to.equal(undefined);
    expect(bearerToken('Bearer a b')).to.equal(undefined);
    expect(bearerToken(undefined)).to.equal(undefined);
  });

  it('compares tokens of any length without throwing (digests have one length)', () => {
    expect(tokensEqual(TOKEN, TOKEN)).to.equal(true);
    expect(tokensEqual('x', TOKEN)).to.equal(false);
    expect(tokensEqual(TOKEN.repeat(100), TOKEN)).to.equal(false);
  });
});
