import { expect } from 'chai';
import { ApiException } from '@kubernetes/client-node';
import { errorMessage, isConflict, isGone, isNotFound, statusCode } from './errors.ts';

describe('kube/errors', () => {
  it('reads .code of ApiException', () => {
    const err = new ApiException(409, 'Conflict', '{"message":"the object has been modified"}', {});
    expect(statusCode(err)).to.equal(409);
    expect(isConflict(err)).to.equal(true);
    expect(isNotFound(err)).to.equal(false);
    expect(errorMessage(err)).to.equal('409: the object has been modified');
  });

  it('reads .statusCode of watch errors and .code of Status objects', () => {
    const watchErr = Object.assign(new Error('Gone'), { statusCode: 410 });
    expect(isGone(watchErr)).to.equal(true);
    expect(isNotFound({ kind: 'Status', code: 404 })).to.equal(true);
  });

  it('returns undefined for errors without a status', () => {
    expect(statusCode(new Error('ECONNREFUSED'))).to.equal(undefined);
    expect(statusCode(undefined)).to.equal(undefined);
    expect(statusCode({ code: 'ECONNRESET' })).to.equal(undefined);
    expect(isConflict('409')).to.equal(false);
  });

  it('formats an ApiException whose body is an object or not JSON', () => {
    expect(errorMessage(new ApiException(404, 'x', { message: 'not found' }, {}))).to.equal('404: not found');
    expect(errorMessage(new ApiException(500, 'x', '<html>', {}))).to.equal('HTTP 500');
  });
});
