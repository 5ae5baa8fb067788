import { expect } from 'chai';
import { ConfigError, describeConfig, parseConfig } from './config.ts';

const base = { SPO_POOL: 'demo', SPO_POOL_NAMESPACE: 'team-a', SPO_REDIS_NODES: '127.0.0.1:7000, redis-1:7001' };

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    parseConfig(env, 'host-1');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('worker config', () => {
  it('applies defaults', () => {
    const c = parseConfig(base, 'host-1');
    expect(c.pool, 'the pool identity: namespace/name').to.equal('team-a/demo');
    expect(c.workerName).to.equal('host-1');
    expect(c.port).to.equal(8080);
    expect(c.redisNodes).to.deep.equal([
      { host: '127.0.0.1', port: 7000 },
      { host: 'redis-1', port: 7001 },
    ]);
    expect(c.sessionTtlSeconds).to.equal(3600);
    expect(c.anonTtlSeconds).to.equal(300);
    expect(c.maxSessionBytes).to.equal(1024 * 1024);
    expect(c.durability).to.equal('leader');
    expect(c.sessionMode).to.equal('Centralized');
    expect(c.allowDegraded).to.equal(false);
    expect(c.drainDeadlineSeconds).to.equal(30);
    expect(c.shutdownLingerSeconds).to.equal(5);
    expect(c.advertiseEndpoint).to.equal('host-1:8080');
  });

  it('reads every variable', () => {
    const c = parseConfig(
      {
        ...base,
        POD_NAME: 'pod-a',
        SPO_PORT: '9000',
        SPO_REDIS_USERNAME: 'u',
        SPO_REDIS_PASSWORD: 'p',
        SPO_KEY_PREFIX: 'x',
        SPO_SESSION_TTL_SECONDS: '600',
        SPO_ANON_TTL_SECONDS: '60',
        SPO_MAX_SESSION_BYTES: '2048',
        SPO_DURABILITY: 'replica',
        SPO_SESSION_MODE: 'workerlocal',
        SPO_ALLOW_DEGRADED: 'yes',
        SPO_DRAIN_DEADLINE_SECONDS: '5',
        SPO_SHUTDOWN_LINGER_SECONDS: '0',
        POD_IP: '10.0.0.7',
      },
      'host-1',
    );
    expect(c).to.include({
      workerName: 'pod-a',
      port: 9000,
      redisUsername: 'u',
      redisPassword: 'p',
      keyPrefix: 'x',
      sessionTtlSeconds: 600,
      anonTtlSeconds: 60,
    });
    expect(c).to.include({
      maxSessionBytes: 2048,
      durability: 'replica',
      sessionMode: 'WorkerLocal',
      allowDegraded: true,
      drainDeadlineSeconds: 5,
      shutdownLingerSeconds: 0,
    });
    expect(c.advertiseEndpoint).to.equal('10.0.0.7:9000');
    expect(parseConfig({ ...base, POD_NAME: 'pod-a', SPO_WORKER_NAME: 'w-1' }).workerName).to.equal('w-1');
  });

  it('reports every bad value at once, by name', () => {
    const found = problems({
      SPO_PORT: 'eighty',
      SPO_SESSION_MODE: 'Local',
      SPO_ALLOW_DEGRADED: 'maybe',
      SPO_DURABILITY: 'disk',
      SPO_SESSION_TTL_SECONDS: '0',
      SPO_REDIS_NODES: 'redis-0',
      SPO_SHUTDOWN_LINGER_SECONDS: '61',
    });
    const text = found.join('\n');
    expect(text).to.match(/SPO_POOL is required/);
    expect(text).to.match(/SPO_PORT='eighty' is not an integer/);
    expect(text).to.match(/SPO_SESSION_MODE='Local' is not one of WorkerLocal, Dual, Centralized/);
    expect(text).to.match(/SPO_ALLOW_DEGRADED='maybe' is not a boolean/);
    expect(text).to.match(/SPO_DURABILITY='disk'/);
    expect(text).to.match(/SPO_SHUTDOWN_LINGER_SECONDS=61/);
    expect(text).to.match(/SPO_SESSION_TTL_SECONDS=0 is out of range/);
    expect(text).to.match(/SPO_REDIS_NODES entry 'redis-0' is not host:port/);
  });

  it('reads the handler container port and deadline; without a port, built-in handlers', () => {
    expect(parseConfig(base, 'h')).to.include({ handlerPort: undefined, handlerTimeoutMs: 60_000 });
    expect(parseConfig({ ...base, SPO_HANDLER_PORT: '8081', SPO_HANDLER_TIMEOUT_MS: '1500' }, 'h')).to.include({
      handlerPort: 8081,
      handlerTimeoutMs: 1500,
    });
    expect(problems({ ...base, SPO_HANDLER_PORT: '8080' }).join()).to.match(/SPO_HANDLER_PORT=8080 must differ from SPO_PORT/);
    expect(problems({ ...base, SPO_HANDLER_PORT: 'x', SPO_HANDLER_TIMEOUT_MS: '5' }).join('\n')).to.match(
      /SPO_HANDLER_PORT='x' is not an integer[\s\S]*SPO_HANDLER_TIMEOUT_MS=5 is out of range/,
    );
  });

  it('requires Redis nodes and an anonymous TTL not above the session TTL', () => {
    expect(problems({ SPO_POOL: 'demo' }).join()).to.match(/SPO_REDIS_NODES is required/);
    expect(problems({ ...base, SPO_SESSION_TTL_SECONDS: '100', SPO_ANON_TTL_SECONDS: '200' }).join()).to.match(/must not exceed/);
    expect(problems({ ...base, SPO_POOL: 'Bad_Pool' }).join()).to.match(/DNS-1123/);
  });

  it('requires the pool namespace, a DNS-1123 label, as part of the pool identity', () => {
    expect(problems({ ...base, SPO_POOL_NAMESPACE: '' }).join()).to.match(/SPO_POOL_NAMESPACE is required/);
    for (const bad of ['a/b', 'Team', 'a.b', 'x'.repeat(64), '-a'])
      expect(problems({ ...base, SPO_POOL_NAMESPACE: bad }).join(), bad).to.match(/SPO_POOL_NAMESPACE='.*' is not a DNS-1123 label/);
    expect(problems({ ...base, SPO_PORT: '70000' }).join()).to.match(/out of range/);
  });

  it('takes an admin token of 16 characters or more, refuses a short one without echoing it, and never describes it', () => {
    const token = 'a'.repeat(64);
    const c = parseConfig({ ...base, SPO_ADMIN_TOKEN: token }, 'host-1');
    expect(c.adminToken).to.equal(token);
    expect(describeConfig(c).adminToken).to.equal('[set]');
    expect(parseConfig(base, 'host-1').adminToken).to.equal(undefined);
    const short = problems({ ...base, SPO_ADMIN_TOKEN: 'short-secret' }).join();
    expect(short).to.match(/SPO_ADMIN_TOKEN must be at least 16 characters/);
    expect(short).to.not.include('short-secret');
  });
});
