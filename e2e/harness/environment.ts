// The whole local environment of one run: a Redis Cluster and a Kubernetes control plane
// with kwok nodes. SPO_SERVICES=redis starts the Redis Cluster only (quick store work).
import { startControlPlane, stopControlPlane, type ControlPlane } from './control-plane.ts';
import { startRedisCluster, stopRedisCluster, redisEndpoints, type RedisClusterState } from './redis-cluster.ts';
import { binaries } from './paths.ts';

export interface Environment {
  runDir: string;
  redis: RedisClusterState;
  kube?: ControlPlane;
  /** Variables that tests and child processes read (see test-env.ts). */
  variables(): Record<string, string>;
  stop(): Promise<void>;
}

export interface EnvironmentOptions {
  log?: (line: string) => void;
  kube?: boolean;
}

export async function startEnvironment(runDir: string, options: EnvironmentOptions = {}): Promise<Environment> {
  const log = options.log ?? (() => undefined);
  const wantKube = options.kube ?? process.env.SPO_SERVICES !== 'redis';
  let redis: RedisClusterState | undefined;
  let kube: ControlPlane | undefined;
  const stop = async () => {
    if (kube) await stopControlPlane(kube, log);
    if (redis) await stopRedisCluster(redis);
  };
  try {
    let started = Date.now();
    log('starting Redis Cluster (3 masters, 3 replicas)');
    redis = await startRedisCluster(runDir);
    log(`Redis Cluster ready in ${Date.now() - started} ms: ${redisEndpoints(redis).join(',')}`);
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
    ...(kube ? { kube } : {}),
    variables() {
      const bins = binaries();
      return {
        SPO_RUN_DIR: runDir,
        SPO_REDIS_RUN_DIR: runDir,
        SPO_REDIS_NODES: redisEndpoints(redisState).join(','),
        PATH: [...bins.pathDirs, process.env.PATH ?? ''].join(':'),
        ...(kube ? { KUBECONFIG: kube.kubeconfigPath } : {}),
      };
    },
    stop,
  };
}
