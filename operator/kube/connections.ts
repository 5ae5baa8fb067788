// client-node 2.0.1 builds a new undici Agent for every API request (KubeConfig.createDispatcher
// is not cached, unlike the https.Agent of createAgent): every call opens a fresh TLS
// connection and builds a new SecureContext. With 200 pools that cost most of the operator's
// CPU, most of its latency and much of its memory (see bench/operator.bench.ts). This reuses
// one dispatcher per (cluster, user, TLS options) so connections are kept alive and pooled;
// the dispatcher is rebuilt every maxAgeMs so rotated client certificates are picked up.
// Every place the operator builds API clients (loadKubeConfig, the shared informers, the pool,
// migration and drain controllers) passes its KubeConfig through shareConnections (idempotent).
import type { KubeConfig } from '@kubernetes/client-node';

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;

interface Cached {
  key: string;
  at: number;
  dispatcher: unknown;
}

function optionsKey(cluster: unknown, agentOptions: Record<string, unknown>): string {
  const name = (cluster as { name?: string; server?: string } | null) ?? {};
  const parts = Object.entries(agentOptions)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${Buffer.isBuffer(v) ? v.toString('base64') : JSON.stringify(v)}`);
  return `${name.name ?? ''}|${name.server ?? ''}|${parts.join('|')}`;
}

/** Makes kc reuse its HTTP dispatcher (connection pool) across API calls. Returns kc. */
export function shareConnections(kc: KubeConfig, maxAgeMs = 600_000, now: () => number = Date.now): KubeConfig {
  const target = kc as unknown as { createDispatcher?: CreateDispatcher; __spoShared?: boolean };
  if (typeof target.createDispatcher !== 'function' || target.__spoShared) return kc;
  const original = target.createDispatcher.bind(kc);
  const cache = new Map<string, Cached>();
  target.createDispatcher = (cluster, agentOptions) => {
    const key = optionsKey(cluster, agentOptions);
    const hit = cache.get(key);
    if (hit && now() - hit.at < maxAgeMs) return hit.dispatcher;
    const dispatcher = original(cluster, agentOptions);
    // An old dispatcher is left to finish its requests; idle sockets close on their own.
    cache.set(key, { key, at: now(), dispatcher });
    return dispatcher;
  };
  target.__spoShared = true;
  return kc;
}
