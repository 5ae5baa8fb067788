// Shared pieces of the migration, drain and helm end-to-end tests: the operator as a child process
// (SIGKILL-able), the CRDs installed with the pinned kubectl, a LocalKubelet running the worker
// pods, a SessionPool per test (own name and key prefix), and SessionMigrations. Traffic and
// the invariant checks are in traffic.ts.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  SESSION_MIGRATION_PLURAL,
  SESSION_POOL_KIND,
  SESSION_POOL_PLURAL,
  VERSION,
  type DeepPartial,
  type SessionMigration,
  type SessionMigrationSpec,
  type SessionPool,
} from '../../../operator/api/index.ts';
import { createSessionStore, poolIdentity, type RedisSessionStore, type SessionStore } from '../../../operator/store/index.ts';
import { LocalKubelet } from '../../harness/local-kubelet.ts';
import { binaries, repoRoot } from '../../harness/paths.ts';
import { isRunning, run, startProcess, stopProcess, waitFor, type ProcessRecord } from '../../harness/processes.ts';
import { kubeTestEnv, redisTestEnv } from '../../harness/test-env.ts';

export const WORKER_IMAGE = 'ghcr.io/dspex/session-pool-operator:e2e';

export interface MigrationEnv {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  runDir: string;
  kubeconfigPath: string;
  redisEndpoints: string[];
  kubelet: LocalKubelet;
  operator: ProcessRecord | undefined;
}

/** kubectl (pinned) with the test's kubeconfig. */
export async function kubectl(env: Pick<MigrationEnv, 'kubeconfigPath'>, args: string[], timeoutMs = 150_000): Promise<string> {
  return run(binaries().kubectl, ['--kubeconfig', env.kubeconfigPath, ...args], {
    timeoutMs,
    env: { ...process.env, PATH: `${binaries().pathDirs.join(path.delimiter)}${path.delimiter}${process.env.PATH ?? ''}` },
  });
}

/** Clients, the Redis endpoints and a (not yet started) LocalKubelet for this run's plane. */
export function testEnvironment(): MigrationEnv {
  const { kubeconfigPath, runDir } = kubeTestEnv();
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    runDir,
    kubeconfigPath,
    redisEndpoints: redisTestEnv().endpoints,
    kubelet: new LocalKubelet({
      kubeconfigPath,
      runDir,
      env: { SPO_LOG_LEVEL: 'warn', SPO_HEARTBEAT_SECONDS: '1', SPO_HOST: '127.0.0.1' },
      log: (line) => appendFileSync(path.join(runDir, 'local-kubelet.log'), `${new Date().toISOString()} ${line}\n`),
    }),
    operator: undefined,
  };
}

/** The CRDs installed with kubectl, the LocalKubelet started, and the operator as a child process. */
export async function setupMigrationEnv(): Promise<MigrationEnv> {
  const env = testEnvironment();
  await kubectl(env, ['apply', '--server-side', '--force-conflicts', '-f', path.join(repoRoot, 'crds')]);
  // `kubectl wait` fails at once on a CRD whose status has no conditions yet ("accessor error"): asked again.
  await waitFor(
    'the CRDs Established',
    () =>
      kubectl(env, [
        'wait',
        '--for',
        'condition=Established',
        '--timeout=30s',
        'crd/sessionpools.dspex.io',
        'crd/sessionmigrations.dspex.io',
      ]),
    90_000,
    500,
  );
  await env.kubelet.start();
  startOperator(env);
  return env;
}

let operatorStarts = 0;

/** `node operator/cmd/operator.ts` (all controllers) as a child process, with more flags. */
function spawnOperator(env: MigrationEnv, extraArgs: string[]): ProcessRecord {
  operatorStarts += 1;
  return startProcess({
    name: `operator-migration-e2e-${operatorStarts}`,
    bin: process.execPath,
    args: [path.join(repoRoot, 'operator/cmd/operator.ts'), '--metrics-port=0', '--resync-seconds=30', ...extraArgs],
    runDir: env.runDir,
    cwd: repoRoot,
    env: { ...process.env, KUBECONFIG: env.kubeconfigPath, SPO_LOG_LEVEL: process.env.SPO_E2E_OPERATOR_LOG_LEVEL ?? 'info' },
  });
}

/** Starts the operator without leader election as `env.operator`. */
export function startOperator(env: MigrationEnv): ProcessRecord {
  env.operator = spawnOperator(env, []);
  return env.operator;
}

/**
 * One replica of a leader-elected operator (Lease `leaseName` in `default`, short timings so a
 * standby takes over within seconds). The caller keeps and stops the record; `env.operator` is untouched.
 */
export function startElectedOperator(env: MigrationEnv, identity: string, leaseName: string): ProcessRecord {
  return spawnOperator(env, [
    '--leader-elect',
    `--leader-election-id=${leaseName}`,
    '--leader-election-namespace=default',
    `--identity=${identity}`,
    '--lease-duration-seconds=4',
    '--renew-deadline-seconds=3',
    '--retry-period-seconds=1',
  ]);
}

/** The identity holding the leader Lease `leaseName` in `default`, if any. */
export async function leaseHolder(env: MigrationEnv, leaseName: string): Promise<string | undefined> {
  try {
    const lease = await env.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: leaseName, namespace: 'default' });
    return lease.spec?.holderIdentity ?? undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILL: no graceful stop, the journal is all that is left. */
export function killOperator(env: MigrationEnv): void {
  if (env.operator && isRunning(env.operator)) process.kill(env.operator.pid, 'SIGKILL');
  env.operator = undefined;
}

export async function teardownMigrationEnv(env: MigrationEnv | undefined): Promise<void> {
  if (!env) return;
  if (env.operator) await stopProcess(env.operator, 10_000);
  await env.kubelet.stop();
}

export interface TestPool {
  name: string;
  namespace: string;
  /** The pool's identity in the store (`<namespace>/<name>`): what every store call of the test names. */
  id: string;
  keyPrefix: string;
  store: RedisSessionStore & SessionStore;
}

let poolCounter = 0;

/** A SessionPool of `replicas` workers on the kwok nodes, its workers registered in the store. */
export async function createPool(
  env: MigrationEnv,
  options: {
    replicas: number;
    prefix: string;
    maintenance?: Record<string, unknown>;
    nodeSelector?: Record<string, string>;
    /** More spec fields (e.g. autoscaling), merged over the defaults above. */
    spec?: Record<string, unknown>;
    /** Namespace (created when missing); default 'default'. */
    namespace?: string;
    /** Exact pool name instead of one made from the prefix. */
    name?: string;
    /** Exact key prefix instead of one made from the name. */
    keyPrefix?: string;
  },
): Promise<TestPool> {
  poolCounter += 1;
  const name = options.name ?? `${options.prefix}-${Date.now().toString(36)}-${poolCounter}`;
  const namespace = options.namespace ?? 'default';
  const keyPrefix = options.keyPrefix ?? `e2e-${name}`;
  if (namespace !== 'default') await ensureNamespace(env, namespace);
  await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: SESSION_POOL_PLURAL,
    namespace,
    body: {
      apiVersion: API_VERSION,
      kind: SESSION_POOL_KIND,
      metadata: { name },
      spec: {
        replicas: options.replicas,
        worker: { image: WORKER_IMAGE },
        store: { endpoints: env.redisEndpoints, keyPrefix },
        maintenance: options.maintenance ?? {},
        template: {
          spec: {
            terminationGracePeriodSeconds: 10,
            tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
            ...(options.nodeSelector ? { nodeSelector: options.nodeSelector } : {}),
          },
        },
        ...options.spec,
      },
    },
  });
  const store = createSessionStore({ nodes: env.redisEndpoints, keyPrefix, degraded: { enabled: false }, logger: undefined });
  const pool: TestPool = { name, namespace, id: poolIdentity(namespace, name), keyPrefix, store };
  await waitForWorkers(env, pool, options.replicas);
  return pool;
}

/** Creates the namespace unless it exists. */
export async function ensureNamespace(env: MigrationEnv, namespace: string): Promise<void> {
  await env.core.createNamespace({ body: { metadata: { name: namespace } } }).catch((error: unknown) => {
    if ((error as { code?: number }).code !== 409) throw error;
  });
}

/** Waits until `count` pool pods run locally and are registered, not draining, in the store. */
export async function waitForWorkers(env: MigrationEnv, pool: TestPool, count: number, timeoutMs = 60_000): Promise<string[]> {
  return waitFor(
    `${count} workers of ${pool.name} registered`,
    async () => {
      const pods = await poolPods(env, pool);
      const running = new Set(
        pods.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name ?? ''),
      );
      const registered = (await pool.store.listWorkers(pool.id)).filter((w) => !w.draining && running.has(w.worker)).map((w) => w.worker);
      return registered.length >= count ? registered.sort() : undefined;
    },
    timeoutMs,
    250,
  );
}

export async function poolPods(env: MigrationEnv, pool: TestPool): Promise<V1Pod[]> {
  return (await env.core.listNamespacedPod({ namespace: pool.namespace, labelSelector: `dspex.io/pool=${pool.name}` })).items;
}

/** Local endpoints of the pool's running workers (not draining). */
export async function poolEndpoints(env: MigrationEnv, pool: TestPool): Promise<string[]> {
  const names = new Set((await pool.store.listWorkers(pool.id)).filter((w) => !w.draining).map((w) => w.worker));
  return [...env.kubelet.workers.values()]
    .filter((w) => w.namespace === pool.namespace && names.has(w.pod) && isRunning(w.record))
    .map((w) => w.endpoint);
}

export async function deletePool(env: MigrationEnv, pool: TestPool | undefined): Promise<void> {
  if (!pool) return;
  await env.custom
    .deleteCollectionNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_MIGRATION_PLURAL,
      namespace: pool.namespace,
      labelSelector: `dspex.io/pool=${pool.name}`,
    })
    .catch(() => undefined);
  await env.custom
    .deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace: pool.namespace,
      name: pool.name,
    })
    .catch(() => undefined);
  await pool.store.close().catch(() => undefined);
}

// ---- migrations --------------------------------------------------------------------------

export async function createMigration(
  env: MigrationEnv,
  pool: TestPool,
  name: string,
  spec: DeepPartial<SessionMigrationSpec>,
): Promise<string> {
  const full = `${pool.name}-${name}`;
  await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: SESSION_MIGRATION_PLURAL,
    namespace: pool.namespace,
    body: {
      apiVersion: API_VERSION,
      kind: 'SessionMigration',
      metadata: { name: full, labels: { 'dspex.io/pool': pool.name } },
      spec: { poolRef: { name: pool.name }, ...spec },
    },
  });
  return full;
}

export async function getPool(env: MigrationEnv, pool: Pick<TestPool, 'name' | 'namespace'>): Promise<SessionPool | undefined> {
  try {
    return (await env.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace: pool.namespace,
      name: pool.name,
    })) as SessionPool;
  } catch {
    return undefined;
  }
}

/** A merge patch of the pool's spec, as `kubectl patch --type merge` sends it. */
export async function patchPoolSpec(
  env: MigrationEnv,
  pool: Pick<TestPool, 'name' | 'namespace'>,
  spec: Record<string, unknown>,
): Promise<void> {
  await env.custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace: pool.namespace, name: pool.name, body: { spec } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

export async function getMigration(env: MigrationEnv, namespace: string, name: string): Promise<SessionMigration | undefined> {
  try {
    return (await env.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_MIGRATION_PLURAL,
      namespace,
      name,
    })) as SessionMigration;
  } catch {
    return undefined;
  }
}

export async function waitForPhase(
  env: MigrationEnv,
  namespace: string,
  name: string,
  phases: string[],
  timeoutMs = 120_000,
): Promise<SessionMigration> {
  return waitFor(
    `SessionMigration ${name} in ${phases.join('|')}`,
    async () => {
      const m = await getMigration(env, namespace, name);
      return m?.status?.phase && phases.includes(m.status.phase) ? m : undefined;
    },
    timeoutMs,
    100,
  );
}
