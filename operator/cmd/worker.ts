// Entry point of a worker: `node operator/cmd/worker.ts`, configured by SPO_* variables
// (operator/worker/config.ts). SIGTERM and SIGINT drain (in-flight work finishes by
// SPO_DRAIN_DEADLINE_SECONDS), then the process exits 0.
import { createLogger } from '../observability/logger.ts';
import { defaultRegistry } from '../observability/metrics.ts';
import { createSessionStore } from '../store/index.ts';
import { ConfigError, describeConfig, parseConfig, redisConnection } from '../worker/config.ts';
import { Worker } from '../worker/worker.ts';

const logger = createLogger('worker');

let config;
let connection;
try {
  config = parseConfig();
  connection = redisConnection(config);
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}

const registry = defaultRegistry();
const store = createSessionStore({
  nodes: config.redisNodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`),
  ...(config.keyPrefix ? { keyPrefix: config.keyPrefix } : {}),
  defaultTtlSeconds: config.sessionTtlSeconds,
  anonymousTtlSeconds: config.anonTtlSeconds,
  maxDataBytes: config.maxSessionBytes,
  durability: config.durability,
  degraded: { enabled: config.allowDegraded },
  connection,
  registry,
  logger: createLogger('store', { pool: config.pool, worker: config.workerName }),
});

const worker = new Worker({ config, store, registry, logger: logger.child({ pool: config.pool, worker: config.workerName }) });

let signalled = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (signalled) return;
  signalled = true;
  logger.info({ signal }, 'signal received: draining');
  worker.stop(`signal ${signal}`).then(
    () => process.exit(0),
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  logger.info({ config: describeConfig(config) }, 'starting worker');
  if (config.redisTls?.insecureSkipVerify)
    logger.warn(
      'SPO_REDIS_TLS_INSECURE_SKIP_VERIFY: the Redis server certificates are NOT verified (anyone on the path can read the sessions)',
    );
  await worker.start();
} catch (error) {
  logger.error({ err: error }, 'worker failed to start');
  await store.close().catch(() => undefined);
  process.exit(1);
}
