// Shared by the pool controller's integration tests (pool*.int.test.ts, leader-failover.int.test.ts):
// waitFor and kubectl, and a fixture that runs the operator in-process (startOperator) watching a
// namespace of its own, with only the pool controller, against the REAL apiserver and Redis Cluster.
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { kubeTestEnv, redisTestEnv } from '../../../e2e/harness/test-env.ts';
import { repoRoot } from '../../../e2e/harness/paths.ts';
import { GROUP, SESSION_MIGRATION_PLURAL, SESSION_POOL_PLURAL, VERSION, type SessionMigration, type SessionPool } from '../../api/index.ts';
import { parseOperatorConfig } from '../../cmd/config.ts';
import { startOperator, type OperatorHandle } from '../../cmd/operator.ts';
import { isNotFound } from '../../kube/errors.ts';
import { eventually } from '../../kube/test-support.ts';
import { createSessionStore, type SessionStore } from '../../store/index.ts';

const exec = promisify(execFile);
export const silent = pino({ level: process.env.SPO_TEST_LOG_LEVEL ?? 'silent' });
export const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** kube/test-support's `eventually`, with the longer defaults these operator-driven waits need. */
export function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  return eventually(what, probe, timeoutMs, intervalMs);
}

export function kubectl(args: string[]): Promise<{ stdout: string }> {
  return exec('kubectl', args, { env: process.env, cwd: repoRoot });
}

/**
 * Before the tests of the describe it is called in: installs the CRDs, creates a namespace of
 * its own (prefix-xxxxxx) and starts the operator on it; after them: drops the finalizers of
 * what is left, stops the operator, closes the stores and deletes the namespace.
 */
export function poolOperatorOnApiserver(prefix: string) {
  const kc = new KubeConfig();
  let custom: CustomObjectsApi;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let policy: PolicyV1Api;
  let endpoints: string[];
  const namespace = `${prefix}-${randomBytes(3).toString('hex')}`;
  let operator: OperatorHandle;
  const stores: SessionStore[] = [];

  function storeFor(prefix: string): SessionStore {
    const store = createSessionStore({ nodes: endpoints, keyPrefix: prefix, registry: new Registry(), logger: silent });
    stores.push(store);
    return store;
  }

  async function createPool(name: string, spec: Record<string, unknown>): Promise<SessionPool> {
    return (await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'SessionPool',
        metadata: { name },
        spec: { worker: { image: 'spo:test' }, store: { endpoints, keyPrefix: `pi${randomBytes(3).toString('hex')}` }, ...spec },
      },
    })) as SessionPool;
  }

  async function getPool(name: string): Promise<SessionPool> {
    return (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_POOL_PLURAL,
      namespace,
      name,
    })) as SessionPool;
  }

  async function patchPool(name: string, body: object): Promise<void> {
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SESSION_POOL_PLURAL, namespace, name, body }, merge);
  }

  async function deployment(name: string): Promise<V1Deployment | undefined> {
    try {
      return await apps.readNamespacedDeployment({ name: `${name}-workers`, namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The pool's SessionMigrations in the test namespace. */
  async function migrationsOf(poolName: string): Promise<SessionMigration[]> {
    const list = (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SESSION_MIGRATION_PLURAL,
      namespace,
    })) as {
      items: SessionMigration[];
    };
    return list.items.filter((m) => m.spec.poolRef.name === poolName);
  }

  function condition(pool: SessionPool, type: string) {
    return pool.status?.conditions?.find((c) => c.type === type);
  }

  async function podsOf(name: string) {
    const list = await core.listNamespacedPod({ namespace, labelSelector: `dspex.io/pool=${name}` });
    return list.items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  before(async () => {
    kc.loadFromFile(kubeTestEnv().kubeconfigPath);
    endpoints = redisTestEnv().endpoints;
    custom = kc.makeApiClient(CustomObjectsApi);
    apps = kc.makeApiClient(AppsV1Api);
    core = kc.makeApiClient(CoreV1Api);
    policy = kc.makeApiClient(PolicyV1Api);
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(['wait', '--for=condition=Established', 'crd/sessionpools.dspex.io', 'crd/sessionmigrations.dspex.io', '--timeout=30s']);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const config = parseOperatorConfig({
      argv: [
        '--metrics-port=0',
        '--metrics-host=127.0.0.1',
        `--namespace=${namespace}`,
        '--controllers=pool',
        '--autoscale-interval-seconds=1',
        '--resync-seconds=30',
        '--worker-network-policy',
        '--operator-namespace=spo-system',
        '--operator-pod-labels=app.kubernetes.io/name=session-pool-operator,app.kubernetes.io/instance=spo',
        '--worker-network-policy-extra-peers=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
      ],
      env: {},
      hostname: 'pool-int',
    });
    operator = await startOperator(config, { registry: new Registry(), logger: silent, tuning: { evacuationPollMs: 300 } });
    await operator.synced;
  });

  after(async () => {
    // Pools with Retain or an unreachable store must not hold the namespace: drop finalizers.
    try {
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SESSION_POOL_PLURAL,
        namespace,
      })) as { items: SessionPool[] };
      for (const pool of list.items) await patchPool(pool.metadata.name ?? '', { metadata: { finalizers: null } }).catch(() => undefined);
    } catch {
      // the CRD or namespace is gone already
    }
    await operator?.stop();
    await Promise.all(stores.map((s) => s.close()));
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  return {
    namespace,
    kc,
    get custom(): CustomObjectsApi {
      return custom;
    },
    get core(): CoreV1Api {
      return core;
    },
    get policy(): PolicyV1Api {
      return policy;
    },
    get endpoints(): string[] {
      return endpoints;
    },
    get operator(): OperatorHandle {
      return operator;
    },
    storeFor,
    createPool,
    getPool,
    patchPool,
    deployment,
    migrationsOf,
    condition,
    podsOf,
  };
}
