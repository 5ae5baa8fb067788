import { expect } from 'chai';
import { AnonymousSessionError, InvalidArgumentError, InvalidTtlError, StoreUnavailableError } from '../store/errors.ts';
import { WORKER_ERROR_STATUS, toWorkerError } from './errors.ts';

describe('worker error mapping', () => {
  it("never passes a store failure's text (node addresses) on to the client", () => {
    const address = '10.0.0.7:6379';
    const cause = new Error(`connect ECONNREFUSED ${address}`);
    for (const error of [
      new AnonymousSessionError(`could not create an anonymous session in pool p: ${cause.message}`, { cause }),
      new StoreUnavailableError(`get: Redis is unreachable (${cause.message})`),
      cause,
    ]) {
      const mapped = toWorkerError(error);
      expect(mapped.message, error.message).to.not.contain(address);
      expect(mapped.status).to.equal(503);
      expect(mapped.cause).to.equal(error);
    }
  });

  it("maps the store's argument errors about the worker's own calls to INTERNAL, and a bad TTL to 400", () => {
    const internal = toWorkerError(new InvalidArgumentError('option leaseMs must be a non-negative integer, got -1'));
    expect(internal.code).to.equal('INTERNAL');
    expect(internal.message).to.equal('internal error');
    expect(toWorkerError(new InvalidTtlError('invalid TTL 0')).status).to.equal(400);
  });

  it('gives every code a 4xx or 5xx status', () => {
    for (const [code, status] of Object.entries(WORKER_ERROR_STATUS)) expect(status, code).to.be.within(400, 599);
  });
});
