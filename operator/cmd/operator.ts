// Entry point of the operator: node operator/cmd/operator.ts [flags] (see config.ts, --help).
// The configuration is parsed before anything else is loaded, so --log-level reaches every
// logger; a bad value exits with status 2 and a message naming it. SIGTERM and SIGINT stop
// gracefully: the queues stop, reconciles in flight finish, the Lease is released.
// The process loads only the API groups of @kubernetes/client-node it uses (kube/lean-client.ts).
import { hostname } from 'node:os';
import { registerLeanClient } from '../kube/lean-client.ts';
import { ConfigError, HelpRequested, parseOperatorConfig, type OperatorConfig } from './config.ts';
import type { OperatorHandle, StartOperatorOptions } from './operator-runtime.ts';

export type { OperatorConfig } from './config.ts';
export type { OperatorHandle, StartOperatorOptions } from './operator-runtime.ts';

/** Starts the operator in this process (tests use it in-process). */
export async function startOperator(config: OperatorConfig, options: StartOperatorOptions = {}): Promise<OperatorHandle> {
  const runtime = await import('./operator-runtime.ts');
  return runtime.startOperator(config, options);
}

async function main(): Promise<void> {
  let config: OperatorConfig;
  try {
    config = parseOperatorConfig({ hostname: hostname(), pid: process.pid });
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(err.message);
      process.exit(0);
    }
    console.error(err instanceof ConfigError ? err.message : String(err));
    process.exit(2);
  }
  process.env.SPO_LOG_LEVEL = config.logLevel;
  // Before anything loads @kubernetes/client-node (operator-runtime.ts is imported below).
  if (config.leanKubeClient) registerLeanClient();
  const { createLogger } = await import('../observability/logger.ts');
  const log = createLogger('operator');
  let handle: OperatorHandle;
  try {
    handle = await startOperator(config);
  } catch (err) {
    log.fatal({ err: err instanceof Error ? err.message : String(err) }, 'operator failed to start');
    process.exit(1);
  }
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal }, 'signal received: stopping');
    const force = setTimeout(() => {
      log.error('graceful stop took too long: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5_000);
    force.unref();
    handle.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.main) await main();
