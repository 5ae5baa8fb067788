// The whole local environment of one run: a Redis Cluster and a Kubernetes control plane
// with kwok nodes. SPO_SERVICES=redis starts the Redis Cluster only (quick store work).
// `tlsRedis` adds a second, TLS-only Redis Cluster (its certificates made here with openssl)
// in the sub-directory redis-tls/, for the TLS and ACL tests.
import { startControlPlane, stopControlPlane, type ControlPlane } from './control-plane.ts';
import { startRedisCluster, stopRedisCluster, redisEndpoints, type RedisClusterState } from './redis-cluster.ts';
import { binaries, runRoot } from './paths.ts';
import { createRedisTlsPki } from './pki.ts';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stopAllRecorded } from './processes.ts';

const OWNER_FILE = 'owner.json';
const KEPT_FILE = 'kept.json';
const TLS_REDIS_DIR = 'redis-tls';
/** Kept run directories (a failed run's logs) outlive this many later runs' clean-ups, newest first. */
const KEPT_RUNS = 4;

function ownerAlive(runDir: string): boolean {
  try {
    const { pid } = JSON.parse(readFileSync(path.join(runDir, OWNER_FILE), 'utf8')) as { pid: number };
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Marks a stopped run's directory as kept for a look at its logs (a failed run): no longer owned,
 * so a later run's clean-up does not take it for a stale run, and removed only once KEPT_RUNS newer
 * ones are kept (a CI run's logs survive the next few local runs).
 */
export function keepRun(runDir: string): void {
  rmSync(path.join(runDir, OWNER_FILE), { force: true });
  writeFileSync(path.join(runDir, KEPT_FILE), JSON.stringify({ keptAt: Date.now() }));
}

function keptAt(dir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(dir, KEPT_FILE), 'utf8')) as { keptAt: number }).keptAt;
  } catch {
    return undefined;
  }
}

/**
 * Stops what an earlier run left behind when its owner died without cleaning up (SIGKILL, a
 * lost terminal): only the processes recorded in that run's pid files, then removes its dir.
 * Of the kept runs' directories, all but the newest KEPT_RUNS are removed.
 */
export async function reapStaleRuns(log: (line: string) => void = () => undefined): Promise<void> {
  const root = runRoot();
  if (!existsSync(root)) return;
  const kept: { dir: string; at: number }[] = [];
  for (const name of readdirSync(root)) {
    const dir = path.join(root, name);
    const at = keptAt(dir);
    if (at !== undefined) kept.push({ dir, at });
    if (!existsSync(path.join(dir, OWNER_FILE)) || ownerAlive(dir)) continue;
    log(`cleaning up stale run ${name}`);
    await stopAllRecorded(dir, ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd']);
    if (existsSync(path.join(dir, TLS_REDIS_DIR))) await stopAllRecorded(path.join(dir, TLS_REDIS_DIR));
    rmSync(dir, { recursive: true, force: true });
  }
  for (const { dir } of kept.sort((a, b) => b.at - a.at).slice(KEPT_RUNS)) rmSync(dir, { recursive: true, force: true });
}

export interface Environment {
  runDir: string;
  redis: RedisClusterState;
  /** The TLS-only cluster, when asked for. */
  tlsRedis?: RedisClusterState;
  kube?: ControlPlane;
  /** Variables that tests and child processes read (see test-env.ts). */
  variables(): Record<string, string>;
  stop(): Promise<void>;
}

export interface EnvironmentOptions {
  log?: (line: string) => void;
  kube?: boolean;
  /** Also start a TLS-only Redis Cluster. Default false. */
  tlsRedis?: boolean;
}

export async function startEnvironment(runDir: string, options: EnvironmentOptions = {}): Promise<Environment> {
  const log = options.log ?? (() => undefined);
  const wantKube = options.kube ?? process.env.SPO_SERVICES !== 'redis';
  let redis: RedisClusterState | undefined;
  let tlsRedis: RedisClusterState | undefined;
  let kube: ControlPlane | undefined;
  const tlsDir = path.join(runDir, TLS_REDIS_DIR);
  const stop = async () => {
    if (kube) await stopControlPlane(kube, log);
    if (redis) await stopRedisCluster(redis);
    if (existsSync(tlsDir)) await stopAllRecorded(tlsDir);
    // Anything else a test or the sandbox recorded here (workers, the operator).
    await stopAllRecorded(runDir);
  };
  await reapStaleRuns(log);
  writeFileSync(path.join(runDir, OWNER_FILE), JSON.stringify({ pid: process.pid }));
  try {
    let started = Date.now();
    log('starting Redis Cluster (3 masters, 3 replicas)');
    redis = await startRedisCluster(runDir);
    log(`Redis Cluster ready in ${Date.now() - started} ms: ${redisEndpoints(redis).join(',')}`);
    if (options.tlsRedis) {
      started = Date.now();
      mkdirSync(tlsDir, { recursive: true });
      tlsRedis = await startRedisCluster(tlsDir, { tls: await createRedisTlsPki(path.join(tlsDir, 'pki')) });
      log(`TLS-only Redis Cluster ready in ${Date.now() - started} ms: ${redisEndpoints(tlsRedis).join(',')}`);
    }
    if (wantKube) {
      started = Date.now();
      kube = await startControlPlane(runDir, { log });
      log(`control plane ready in ${Date.now() - started} ms: KUBECONFIG=${kube.kubeconfigPath}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const redisState = redis;
  return {
    runDir,
    redis: redisState,
    ...(tlsRedis ? { tlsRedis } : {}),
    ...(kube ? { kube } : {}),
    variables() {
      const bins = binaries();
      return {
        SPO_RUN_DIR: runDir,
        SPO_REDIS_RUN_DIR: runDir,
        SPO_REDIS_NODES: redisEndpoints(redisState).join(','),
        ...(tlsRedis ? { SPO_REDIS_TLS_RUN_DIR: tlsDir } : {}),
        PATH: [...bins.pathDirs, process.env.PATH ?? ''].join(':'),
        ...(kube ? { KUBECONFIG: kube.kubeconfigPath } : {}),
      };
    },
    stop,
  };
}
