// What integration and end-to-end tests read to reach the real services that
// scripts/run-tests.ts started for this run. Tests never start their own cluster: they get
// it from here, and a missing variable fails with a message that says how to run them.
import path from 'node:path';
import { readRedisClusterState, redisEndpoints, type RedisClusterState } from './redis-cluster.ts';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run integration and e2e tests through 'npm test' or 'node scripts/run-tests.ts <tier>', which start the services`,
    );
  }
  return value;
}

export interface RedisTestEnv {
  state: RedisClusterState;
  /** "host:port" of every node. */
  endpoints: string[];
}

export function redisTestEnv(): RedisTestEnv {
  const state = readRedisClusterState(required('SPO_REDIS_RUN_DIR'));
  return { state, endpoints: redisEndpoints(state) };
}

/** The TLS-only Redis Cluster of the integration tier (its state holds the certificate files). */
export function redisTlsTestEnv(): RedisTestEnv {
  const state = readRedisClusterState(required('SPO_REDIS_TLS_RUN_DIR'));
  return { state, endpoints: redisEndpoints(state) };
}

export interface KubeTestEnv {
  kubeconfigPath: string;
  runDir: string;
}

export function kubeTestEnv(): KubeTestEnv {
  const kubeconfigPath = required('KUBECONFIG');
  return { kubeconfigPath, runDir: path.dirname(kubeconfigPath) };
}
