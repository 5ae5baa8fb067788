// Stands in for a kubelet on kwok nodes: kwok marks worker pods Running but runs nothing, so
// this runs each pool worker pod as a local process named after the pod, with the pod's
// environment. A pod that goes away (or starts terminating) gets SIGTERM, as a kubelet would,
// and its process drains before it exits. Used by the end-to-end tests and the sandbox.
import { CoreV1Api, KubeConfig, makeInformer, type V1EnvVar, type V1Pod } from '@kubernetes/client-node';
import path from 'node:path';
import { freePort } from './ports.ts';
import { isRunning, startProcess, stopProcess, type ProcessRecord } from './processes.ts';
import { repoRoot } from './paths.ts';

/** Worker pods carry this label (set by the SessionPool reconciler). */
export const WORKER_POD_SELECTOR = 'app.kubernetes.io/component=session-worker';

export interface LocalWorker {
  pod: string;
  namespace: string;
  port: number;
  endpoint: string;
  record: ProcessRecord;
}

export interface LocalKubeletOptions {
  kubeconfigPath: string;
  runDir: string;
  /** Extra environment for every worker (e.g. SPO_LOG_LEVEL). */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

async function resolveEnv(core: CoreV1Api, pod: V1Pod, vars: V1EnvVar[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const namespace = pod.metadata?.namespace ?? 'default';
  for (const v of vars) {
    if (v.value !== undefined) out[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.name') out[v.name] = pod.metadata?.name ?? '';
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') out[v.name] = namespace;
    else if (v.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') out[v.name] = pod.spec?.nodeName ?? '';
    else if (v.valueFrom?.secretKeyRef) {
      const ref = v.valueFrom.secretKeyRef;
      try {
        const secret = await core.readNamespacedSecret({ name: ref.name ?? '', namespace });
        const value = secret.data?.[ref.key];
        if (value !== undefined) out[v.name] = Buffer.from(value, 'base64').toString('utf8');
      } catch (error) {
        if (!ref.optional) throw error;
      }
    }
  }
  return out;
}

export class LocalKubelet {
  readonly workers = new Map<string, LocalWorker>();
  private readonly starting = new Set<string>();
  private informer: ReturnType<typeof makeInformer<V1Pod>> | undefined;
  private readonly options: LocalKubeletOptions;
  private stopped = false;

  constructor(options: LocalKubeletOptions) {
    this.options = options;
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  async start(): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromFile(this.options.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: WORKER_POD_SELECTOR }), WORKER_POD_SELECTOR);
    const sync = (pod: V1Pod) => void this.sync(core, pod).catch((error: unknown) => this.log(`pod ${pod.metadata?.name}: ${String(error)}`));
    informer.on('add', sync);
    informer.on('update', sync);
    informer.on('delete', (pod) => void this.stopWorker(key(pod)));
    informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void informer.start().catch(() => undefined), 1000);
    });
    await informer.start();
    this.informer = informer;
  }

  private async sync(core: CoreV1Api, pod: V1Pod): Promise<void> {
    const id = key(pod);
    const running = pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
    if (!running) {
      if (pod.metadata?.deletionTimestamp) await this.stopWorker(id);
      return;
    }
    const existing = this.workers.get(id);
    if ((existing && isRunning(existing.record)) || this.starting.has(id) || this.stopped) return;
    this.starting.add(id);
    try {
      const container = pod.spec?.containers[0];
      const env = await resolveEnv(core, pod, container?.env ?? []);
      const port = await freePort();
      const name = pod.metadata?.name ?? 'worker';
      const record = startProcess({
        name: `worker-${pod.metadata?.namespace}-${name}`,
        bin: process.execPath,
        args: [path.join(repoRoot, 'operator/cmd/worker.ts')],
        runDir: this.options.runDir,
        cwd: repoRoot,
        env: {
          ...process.env,
          ...env,
          ...this.options.env,
          POD_NAME: name,
          POD_NAMESPACE: pod.metadata?.namespace ?? 'default',
          SPO_WORKER_NAME: name,
          SPO_PORT: String(port),
          SPO_ADVERTISE_ADDRESS: `127.0.0.1:${port}`,
        },
      });
      this.workers.set(id, { pod: name, namespace: pod.metadata?.namespace ?? 'default', port, endpoint: `127.0.0.1:${port}`, record });
      this.log(`started worker for pod ${id} on 127.0.0.1:${port} (pid ${record.pid})`);
    } finally {
      this.starting.delete(id);
    }
  }

  /** SIGTERM, the worker drains, then exits; SIGKILL after the grace period. */
  async stopWorker(id: string, graceMs = 30_000): Promise<void> {
    const worker = this.workers.get(id);
    if (!worker) return;
    this.workers.delete(id);
    this.log(`stopping worker for pod ${id}`);
    await stopProcess(worker.record, graceMs);
  }

  /** Kills a worker without a drain (a crash), for fault tests. */
  killWorker(podName: string): void {
    for (const [id, worker] of this.workers) {
      if (worker.pod === podName && isRunning(worker.record)) {
        process.kill(worker.record.pid, 'SIGKILL');
        this.workers.delete(id);
      }
    }
  }

  endpoints(): string[] {
    return [...this.workers.values()].filter((w) => isRunning(w.record)).map((w) => w.endpoint);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    await Promise.all([...this.workers.keys()].map((id) => this.stopWorker(id, 10_000)));
  }
}

function key(pod: V1Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}
