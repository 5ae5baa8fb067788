// Where the local environment keeps its binaries (cached by version, outside the repo)
// and its per-run state. One place, so scripts, tests and the sandbox agree.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface PinnedVersions {
  K8S_VERSION: string;
  ETCD_VERSION: string;
  KWOK_VERSION: string;
  HELM_VERSION: string;
}

export function pinnedVersions(): PinnedVersions {
  const text = readFileSync(path.join(repoRoot, 'e2e/cluster/versions.env'), 'utf8');
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(\S+)/.exec(line.trim());
    if (match?.[1] && match[2]) entries.set(match[1], match[2]);
  }
  const read = (key: keyof PinnedVersions): string => {
    const value = entries.get(key);
    if (!value) throw new Error(`e2e/cluster/versions.env has no ${key}`);
    return value;
  };
  return {
    K8S_VERSION: read('K8S_VERSION'),
    ETCD_VERSION: read('ETCD_VERSION'),
    KWOK_VERSION: read('KWOK_VERSION'),
    HELM_VERSION: read('HELM_VERSION'),
  };
}

export function cacheDir(): string {
  if (process.env.SPO_CACHE_DIR) return process.env.SPO_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache');
  return path.join(base, 'session-pool-operator');
}

export interface Binaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  etcd: string;
  kwok: string;
  kwokStages: string;
  helm: string;
  /** Directory to put first on PATH so tests and users get the pinned kubectl and helm. */
  pathDirs: string[];
}

export function binaries(): Binaries {
  const v = pinnedVersions();
  const cache = cacheDir();
  const k8s = path.join(cache, `k8s-${v.K8S_VERSION}/bin`);
  const kwokDir = path.join(cache, `kwok-${v.KWOK_VERSION}`);
  const helmBin = path.join(cache, `helm-${v.HELM_VERSION}/bin`);
  return {
    kubeApiserver: path.join(k8s, 'kube-apiserver'),
    kubeControllerManager: path.join(k8s, 'kube-controller-manager'),
    kubeScheduler: path.join(k8s, 'kube-scheduler'),
    kubectl: path.join(k8s, 'kubectl'),
    etcd: path.join(cache, `etcd-${v.ETCD_VERSION}/bin/etcd`),
    kwok: path.join(kwokDir, 'bin/kwok'),
    kwokStages: path.join(kwokDir, 'stages.yaml'),
    helm: path.join(helmBin, 'helm'),
    pathDirs: [k8s, helmBin],
  };
}

/** Root of per-run directories; each run of the tests or the sandbox gets its own. */
export function runRoot(): string {
  return process.env.SPO_RUN_ROOT ?? path.join(cacheDir(), 'runs');
}
