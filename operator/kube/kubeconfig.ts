// Where the operator finds its cluster: $KUBECONFIG (a file path) when set, else the
// in-cluster service account. Either failure says what was tried. The KubeConfig reuses one
// HTTP dispatcher per cluster (connections.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { shareConnections } from './connections.ts';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface LoadKubeConfigOptions {
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Path of the in-cluster token (tests). */
  tokenPath?: string;
}

export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  const kc = new KubeConfig();
  const fromEnv = env.KUBECONFIG;
  if (fromEnv) {
    // KUBECONFIG may list several files; client-node merges them like kubectl.
    const files = fromEnv.split(path.delimiter).filter((f) => f.length > 0);
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length > 0) throw new Error(`KUBECONFIG names missing file(s): ${missing.join(', ')}`);
    try {
      files.forEach((file, index) => {
        if (index === 0) return kc.loadFromFile(file);
        const other = new KubeConfig();
        other.loadFromFile(file);
        kc.mergeConfig(other);
      });
    } catch (err) {
      throw new Error(`cannot load KUBECONFIG (${fromEnv}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (!kc.getCurrentCluster()) {
      throw new Error(`KUBECONFIG (${fromEnv}) has no current context with a cluster: set current-context`);
    }
    return shareConnections(kc);
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const tokenPath = options.tokenPath ?? SERVICE_ACCOUNT_TOKEN;
  if (!host || !port || !existsSync(tokenPath)) {
    throw new Error(
      'no Kubernetes configuration: set KUBECONFIG to a kubeconfig file, or run in a pod ' +
        `(KUBERNETES_SERVICE_HOST/PORT ${host && port ? 'set' : 'not set'}, service account token ${existsSync(tokenPath) ? 'found' : `missing at ${tokenPath}`})`,
    );
  }
  kc.loadFromCluster();
  return shareConnections(kc);
}
