// One real worker process (`node operator/cmd/worker.ts`) on the test run's Redis Cluster, for
// integration tests: started through the harness (pid recorded, own process group), ready when
// /readyz answers 200, stopped by its recorded pid.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../../e2e/harness/paths.ts';
import { freePort } from '../../../e2e/harness/ports.ts';
import { isRunning, startProcess, stopProcess, waitFor, type ProcessRecord } from '../../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../../e2e/harness/test-env.ts';

export interface WorkerProcess {
  record: ProcessRecord;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** GET /readyz: its status and reason. */
  readiness(): Promise<{ status: number; reason: string }>;
  stop(): Promise<void>;
}

/** The namespace test workers run in; their store identity is `${WORKER_TEST_NAMESPACE}/<pool>`. */
export const WORKER_TEST_NAMESPACE = 'default';

/** `waitReady: false` returns once started (for a worker expected never to become ready). */
export async function startWorkerProcess(options: {
  pool: string;
  name: string;
  env?: Record<string, string>;
  waitReady?: boolean;
}): Promise<WorkerProcess> {
  const port = await freePort();
  const runDir = mkdtempSync(path.join(tmpdir(), `spo-${options.pool}-`));
  const record = startProcess({
    name: options.name,
    bin: path.join(repoRoot, 'node_modules/.bin/node'),
    args: ['operator/cmd/worker.ts'],
    runDir,
    cwd: repoRoot,
    env: {
      ...process.env,
      SPO_POOL: options.pool,
      SPO_POOL_NAMESPACE: WORKER_TEST_NAMESPACE,
      SPO_WORKER_NAME: options.name,
      SPO_HOST: '127.0.0.1',
      SPO_PORT: String(port),
      SPO_ADVERTISE_ENDPOINT: `127.0.0.1:${port}`,
      SPO_REDIS_NODES: redisTestEnv().endpoints.join(','),
      SPO_LOG_LEVEL: 'warn',
      ...options.env,
    },
  });
  const base = `http://127.0.0.1:${port}`;
  const readiness = async () => {
    const response = await fetch(`${base}/readyz`);
    const body = (await response.json().catch(() => ({}))) as { reason?: unknown };
    return { status: response.status, reason: typeof body.reason === 'string' ? body.reason : '' };
  };
  const worker = { record, base, readiness, stop: () => stopProcess(record, 10_000) };
  if (options.waitReady === false) return worker;
  try {
    await waitFor(
      `worker ${options.name} ready (log: ${record.logFile})`,
      async () => {
        if (!isRunning(record)) throw new Error(`worker ${options.name} exited (log: ${record.logFile})`);
        return (await fetch(`${base}/readyz`)).status === 200 ? true : undefined;
      },
      30_000,
      100,
    );
  } catch (error) {
    await worker.stop();
    throw error;
  }
  return worker;
}

/** POSTs JSON to a worker; the status, headers and parsed body (every worker answer is JSON). */
export async function postJson(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}
