import { expect } from 'chai';
import { ConfigError, parseConfig, redisConnection } from './config.ts';

const base = { SPO_POOL: 'web', SPO_POOL_NAMESPACE: 'ns', SPO_REDIS_NODES: 'r:6379' };
const problems = (env: Record<string, string>): string[] => {
  try {
    parseConfig({ ...base, ...env }, 'host');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
};

describe('worker/config: TLS towards Redis', () => {
  it('is off by default, and a TLS file or name without SPO_REDIS_TLS is an error (never a silent clear-text connection)', () => {
    expect(parseConfig(base, 'host').redisTls).to.equal(undefined);
    expect(problems({ SPO_REDIS_TLS_CA_FILE: '/ca' })).to.deep.equal(['SPO_REDIS_TLS_CA_FILE is set but SPO_REDIS_TLS is not true']);
  });

  it('reads the files, the server name and the verification switch', () => {
    const config = parseConfig(
      {
        ...base,
        SPO_REDIS_TLS: 'true',
        SPO_REDIS_TLS_CA_FILE: '/ca',
        SPO_REDIS_TLS_CERT_FILE: '/crt',
        SPO_REDIS_TLS_KEY_FILE: '/key',
        SPO_REDIS_TLS_SERVER_NAME: 'redis.data.svc',
        SPO_REDIS_USERNAME: 'pool-web',
        SPO_REDIS_PASSWORD: 'pw',
      },
      'host',
    );
    expect(config.redisTls).to.deep.equal({
      caFile: '/ca',
      certFile: '/crt',
      keyFile: '/key',
      serverName: 'redis.data.svc',
      insecureSkipVerify: false,
    });
    const files: Record<string, string> = {
      '/ca': '-----BEGIN CERTIFICATE-----ca',
      '/crt': '-----BEGIN CERTIFICATE-----c',
      '/key': '-----BEGIN PRIVATE KEY-----k',
    };
    expect(redisConnection(config, (f) => files[f]!)).to.deep.equal({
      username: 'pool-web',
      password: 'pw',
      tls: {
        insecureSkipVerify: false,
        ca: files['/ca'],
        cert: files['/crt'],
        key: files['/key'],
        serverName: 'redis.data.svc',
      },
    });
  });

  it('reports a certificate without key, an IP server name, unreadable and non-PEM files', () => {
    expect(problems({ SPO_REDIS_TLS: 'true', SPO_REDIS_TLS_CERT_FILE: '/crt' })).to.deep.equal([
      'SPO_REDIS_TLS_CERT_FILE and SPO_REDIS_TLS_KEY_FILE go together (a client certificate and its key)',
    ]);
    expect(problems({ SPO_REDIS_TLS: 'true', SPO_REDIS_TLS_SERVER_NAME: '10.1.2.3' })[0]).to.match(
      /SERVER_NAME '10.1.2.3' is an IP address/,
    );
    const config = parseConfig(
      { ...base, SPO_REDIS_TLS: 'true', SPO_REDIS_TLS_CA_FILE: '/missing', SPO_REDIS_TLS_CERT_FILE: '/c', SPO_REDIS_TLS_KEY_FILE: '/k' },
      'host',
    );
    const read = (file: string): string => {
      if (file === '/missing') throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      return 'not pem';
    };
    expect(() => redisConnection(config, read))
      .to.throw(ConfigError)
      .with.property('problems')
      .that.deep.equals([
        'SPO_REDIS_TLS_CA_FILE=/missing cannot be read: ENOENT',
        'SPO_REDIS_TLS_CERT_FILE=/c holds no PEM block',
        'SPO_REDIS_TLS_KEY_FILE=/k holds no PEM block',
      ]);
  });

  it('skips verification only when asked', () => {
    expect(
      parseConfig({ ...base, SPO_REDIS_TLS: 'true', SPO_REDIS_TLS_INSECURE_SKIP_VERIFY: 'true' }, 'host').redisTls?.insecureSkipVerify,
    ).to.equal(true);
  });
});
