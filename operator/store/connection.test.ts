import { expect } from 'chai';
import { redisConnectionOptions, serverNameProblem, tlsOptions } from './connection.ts';
import { InvalidArgumentError } from './errors.ts';

describe('store/connection', () => {
  it('plain TCP: only the user and password', () => {
    expect(redisConnectionOptions({ username: 'u', password: 'p' })).to.deep.equal({ username: 'u', password: 'p' });
    expect(redisConnectionOptions({})).to.deep.equal({});
  });

  it('TLS: CA, client certificate, server name (SNI and the checked name), verification on by default', () => {
    expect(redisConnectionOptions({ tls: { ca: 'CA', cert: 'C', key: 'K', serverName: 'redis.ns.svc' } }).tls).to.deep.equal({
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ca: 'CA',
      cert: 'C',
      key: 'K',
      servername: 'redis.ns.svc',
    });
    expect(tlsOptions({}).rejectUnauthorized).to.equal(true);
    expect(tlsOptions({ insecureSkipVerify: true }).rejectUnauthorized).to.equal(false);
  });

  it('refuses a certificate without its key, and an IP or malformed server name', () => {
    expect(() => tlsOptions({ cert: 'C' })).to.throw(InvalidArgumentError, /both/);
    expect(() => tlsOptions({ key: 'K' })).to.throw(InvalidArgumentError, /both/);
    expect(() => tlsOptions({ serverName: '10.0.0.1' })).to.throw(InvalidArgumentError, /IP address/);
    expect(serverNameProblem('::1')).to.match(/IP address/);
    expect(serverNameProblem('bad name')).to.match(/not a DNS name/);
    expect(serverNameProblem('redis-0.redis.data.svc.cluster.local')).to.equal(undefined);
  });
});
