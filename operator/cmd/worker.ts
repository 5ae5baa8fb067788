// Entry point of a worker: `node operator/cmd/worker.ts`, configured by SPO_* variables
// (operator/worker/config.ts). SIGTERM and SIGINT drain (in-flight work finishes by
// SPO_DRAIN_DEADLINE_SECONDS), then the process exits 0. A signal at any point of start-up ends
// it promptly too, and the whole shutdown is bounded (the longer of the drain deadline and the
// linger, plus a margin).

// The signal handlers come first, before the modules load (seconds on a busy node): a SIGTERM
// that came earlier would otherwise meet node's default action, or none at all when node is
// a PID namespace's init (the image runs it under tini for that case).
// Until the worker exists there is nothing to drain: exit at once (a line in the logger's format).
let onSignal = (signal: NodeJS.Signals): void => {
  const line = { level: 30, time: new Date().toISOString(), pid: process.pid, component: 'worker', signal };
  process.stdout.write(`${JSON.stringify({ ...line, msg: 'signal received while starting: exiting (nothing served yet)' })}\n`);
  process.exit(0);
};
process.on('SIGTERM', (signal) => onSignal(signal));
process.on('SIGINT', (signal) => onSignal(signal));

const [
  { createLogger },
  { defaultRegistry },
  { createSessionStore },
  { ConfigError, describeConfig, parseConfig, redisConnection },
  { Worker },
] = await Promise.all([
  import('../observability/logger.ts'),
  import('../observability/metrics.ts'),
  import('../store/index.ts'),
  import('../worker/config.ts'),
  import('../worker/worker.ts'),
]);

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

// Past the drain deadline (or the linger, if longer) plus this margin the process exits anyway (a
// store call or a close that never returns must not hold it until the kubelet's SIGKILL).
const SHUTDOWN_MARGIN_MS = 10_000;
// The linger runs beside the drain (Worker.stop), not after it.
const shutdownBoundMs = Math.max(config.drainDeadlineSeconds, config.shutdownLingerSeconds) * 1000 + SHUTDOWN_MARGIN_MS;

let signalled = false;
onSignal = (signal) => {
  if (signalled) return;
  signalled = true;
  logger.info({ signal }, 'signal received: draining');
  setTimeout(() => {
    logger.error({ boundSeconds: shutdownBoundMs / 1000 }, 'shutdown did not finish in time: exiting');
    process.exit(1);
  }, shutdownBoundMs).unref();
  worker.stop(`signal ${signal}`, { lingerMs: config.shutdownLingerSeconds * 1000 }).then(
    () => process.exit(0),
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};

try {
  logger.info({ config: describeConfig(config) }, 'starting worker');
  if (config.redisTls?.insecureSkipVerify)
    logger.warn(
      'SPO_REDIS_TLS_INSECURE_SKIP_VERIFY: the Redis server certificates are NOT verified (anyone on the path can read the sessions)',
    );
  await worker.start();
} catch (error) {
  // A start-up cut short by a signal is not a failure: the signal's shutdown exits.
  if (!signalled) {
    logger.error({ err: error }, 'worker failed to start');
    await store.close().catch(() => undefined);
    process.exit(1);
  }
}
