// The operator process: shared informers (warm on the leader and on standbys), an HTTP server
// with /metrics, /healthz and /readyz, leader election that starts the controllers on leading
// and stops them on losing, and a graceful stop (stop the queues, wait for reconciles in
// flight, release the Lease). operator.ts parses the configuration and calls startOperator.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordinationV1Api, EventsV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { startDrainController } from '../controller/drain/controller.ts';
import { startMigrationController } from '../controller/migration/controller.ts';
import { createPoolApi } from '../controller/pool/client.ts';
import { PoolController } from '../controller/pool/controller.ts';
import { createSharedInformers, type SharedInformers } from '../controller/shared/informers.ts';
import { errorMessage } from '../kube/errors.ts';
import { EventRecorder } from '../kube/events.ts';
import { shareConnections } from '../kube/connections.ts';
import { loadKubeConfig } from '../kube/kubeconfig.ts';
import { LeaderElector } from '../kube/leader-election.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { defaultRegistry } from '../observability/metrics.ts';
import type { OperatorConfig } from './config.ts';

export interface StartOperatorOptions {
  kubeConfig?: KubeConfig;
  registry?: Registry;
  logger?: Logger;
  /** Reconciler tuning for tests (evacuation poll and retry). */
  tuning?: { evacuationPollMs?: number; evacuationRetryMs?: number; reapplyIntervalMs?: number };
}

export interface OperatorHandle {
  /** The port the HTTP server listens on (the picked one when metricsPort is 0). */
  port: number;
  isLeader(): boolean;
  isReady(): boolean;
  /** Resolves once the caches have synced. */
  synced: Promise<void>;
  pool: PoolController;
  informers: SharedInformers;
  stop(): Promise<void>;
}

interface Stoppable {
  stop(): Promise<void>;
}

export async function startOperator(config: OperatorConfig, options: StartOperatorOptions = {}): Promise<OperatorHandle> {
  const log = options.logger ?? createLogger('operator', { identity: config.identity });
  const registry = options.registry ?? defaultRegistry();
  const kc = shareConnections(options.kubeConfig ?? loadKubeConfig());

  const informers = createSharedInformers(kc, {
    namespace: config.namespace,
    registry,
    networkPolicies: config.workerNetworkPolicy !== undefined,
  });
  const events = new EventRecorder({ api: kc.makeApiClient(EventsV1Api), reportingInstance: config.identity });
  const pool = new PoolController({
    informers,
    api: createPoolApi(kc),
    events,
    concurrency: config.concurrency,
    registry,
    resyncMs: config.resyncMs,
    tuning: { autoscaleIntervalMs: config.autoscaleIntervalMs, ...options.tuning },
    ...(config.workerNetworkPolicy ? { workerNetworkPolicy: config.workerNetworkPolicy } : {}),
  });

  let stopping = false;
  let others: Stoppable[] = [];
  let transition: Promise<void> = Promise.resolve();
  const startControllers = () => {
    transition = transition.then(async () => {
      if (stopping) return;
      await informers.waitForSync();
      // The runtime wires the controllers; none starts another. They share the informers: one
      // watch and one cache per resource for the whole operator.
      if (config.controllers.includes('pool')) pool.start();
      const shared = { kubeConfig: kc, informers, registry, identity: config.identity, resyncMs: config.resyncMs };
      if (config.controllers.includes('migration'))
        others.push(
          startMigrationController({
            ...shared,
            // One store client per pool connection for the whole operator: the pool controller's cache.
            storeClients: pool.stores,
            concurrency: config.concurrency,
            logger: log.child({ controller: 'sessionmigration' }),
          }),
        );
      // The drain controller creates the Evacuate migrations of draining nodes; the migration controller runs them.
      if (config.controllers.includes('drain'))
        others.push(startDrainController({ ...shared, logger: log.child({ controller: 'nodedrain' }) }));
      log.info({ controllers: config.controllers }, 'controllers started');
    });
  };
  const stopControllers = async () => {
    transition = transition.then(async () => {
      const stopping = others;
      others = [];
      await Promise.all([pool.stop(config.shutdownTimeoutMs), ...stopping.map((c) => c.stop().catch(() => undefined))]);
      log.info('controllers stopped');
    });
    await transition;
  };

  const elector = config.leaderElect
    ? new LeaderElector({
        api: kc.makeApiClient(CoordinationV1Api),
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryPeriodMs: config.retryPeriodMs,
        registry,
        onStartedLeading: () => startControllers(),
        onStoppedLeading: () => stopControllers(),
      })
    : undefined;

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics') {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(errorMessage(err));
        },
      );
      return;
    }
    if (url === '/healthz') {
      res.writeHead(stopping ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(stopping ? 'stopping\n' : 'ok\n');
      return;
    }
    if (url === '/readyz') {
      const ready = isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ready, synced: informers.hasSynced(), leader: elector ? elector.isLeader() : true }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  // Ready: caches synced and either leading, or standing by in the election (a standby is
  // ready to take over; it must not be restarted for not leading).
  const isReady = () => !stopping && informers.hasSynced();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.metricsPort, config.metricsHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info(
    { port, namespace: config.namespace || '(all)', leaderElect: config.leaderElect },
    `serving /metrics, /healthz and /readyz on port ${port}`,
  );

  informers.start();
  const synced = informers.waitForSync();
  synced.then(
    () => log.info('caches synced'),
    () => undefined,
  );
  if (elector) elector.start();
  else startControllers();

  return {
    port,
    isLeader: () => (elector ? elector.isLeader() : true),
    isReady,
    synced,
    pool,
    informers,
    async stop() {
      if (stopping) return;
      stopping = true;
      log.info('shutting down');
      // The elector awaits onStoppedLeading (our controllers stop) before it releases the Lease.
      if (elector) await elector.stop();
      await stopControllers();
      await pool.close();
      await events.flush().catch(() => undefined);
      await informers.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      log.info('stopped');
    },
  };
}
