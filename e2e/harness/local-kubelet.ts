// Stands in for a kubelet on kwok nodes: kwok marks pods Running but runs nothing, so this
// runs every pod of the project's image (the operator's pods from the chart, the pools'
// worker pods) as a local process named after the pod: the container's command with the
// repository as the image's filesystem, the pod's environment, and a kubeconfig carrying a
// token of the pod's ServiceAccount, so the operator runs with the chart's RBAC, as in a
// cluster. A pod that goes away gets SIGTERM, as a kubelet would, and drains before it exits.
// A worker pod with more containers (the user's handler, spec.handler) runs each of them as a
// process too, from an explicit image -> local command table (pod-containers.ts), all sharing
// the pod's ports: every declared container port gets one free loopback port, and SPO_PORT and
// SPO_HANDLER_PORT name the same mapped ports in every container. Such a pod's extra containers
// are restarted when they exit, and its Ready condition follows its processes and readiness
// probes (pod-supervisor.ts). Used by the end-to-end tests and the sandbox.
import { CoreV1Api, KubeConfig, makeInformer, type V1Container, type V1EnvVar, type V1Pod } from '@kubernetes/client-node';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.ts';
import { isRunning, startProcess, stopProcess, type ProcessRecord } from './processes.ts';
import { repoRoot } from './paths.ts';
import { LOCAL_IMAGES, podPorts, preStopGet, probePort, resolveProgram, type LocalImage } from './pod-containers.ts';
import { PodSupervisor, httpGetSucceeds, type ReadinessProbe, type SupervisedContainer } from './pod-supervisor.ts';

/** Pods whose first container runs an image of this repository are run locally. */
export const PROJECT_IMAGE_PATTERN = /(^|\/)session-pool-operator(:|@|$)/;

export interface LocalWorker {
  pod: string;
  namespace: string;
  port: number;
  endpoint: string;
  /** The pod's declared container ports -> the loopback ports that stand in for them. */
  ports: Map<number, number>;
  record: ProcessRecord;
  /** The pod's other containers run here (the handler), with their restarts and the pod's readiness. */
  supervisor?: PodSupervisor;
}

export interface LocalKubeletOptions {
  kubeconfigPath: string;
  runDir: string;
  /** Extra environment for every process (e.g. SPO_LOG_LEVEL). */
  env?: Record<string, string>;
  /** Which images to run; defaults to PROJECT_IMAGE_PATTERN. */
  image?: RegExp;
  /** Local stand-ins for the images of a pod's other containers; defaults to LOCAL_IMAGES. */
  localImages?: LocalImage[];
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
  private readonly terminating = new Set<string>();
  private informer: ReturnType<typeof makeInformer<V1Pod>> | undefined;
  private readonly options: LocalKubeletOptions;
  private stopped = false;
  private core: CoreV1Api | undefined;
  private server = '';
  private caData = '';

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
    this.core = core;
    this.server = kc.getCurrentCluster()?.server ?? '';
    this.caData = kc.getCurrentCluster()?.caData ?? '';
    const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const sync = (pod: V1Pod) =>
      void this.sync(core, pod).catch((error: unknown) => this.log(`pod ${pod.metadata?.name}: ${String(error)}`));
    informer.on('add', sync);
    informer.on('update', sync);
    informer.on('delete', (pod) => void this.stopWorker(key(pod), graceMs(pod)));
    informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void informer.start().catch(() => undefined), 1000);
    });
    await informer.start();
    this.informer = informer;
  }

  private async sync(core: CoreV1Api, pod: V1Pod): Promise<void> {
    const id = key(pod);
    const container = pod.spec?.containers[0];
    if (!container?.image || !(this.options.image ?? PROJECT_IMAGE_PATTERN).test(container.image)) return;
    const running = pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
    if (!running) {
      if (pod.metadata?.deletionTimestamp) await this.terminate(core, pod);
      return;
    }
    const existing = this.workers.get(id);
    if ((existing && isRunning(existing.record)) || this.starting.has(id) || this.stopped) return;
    this.starting.add(id);
    try {
      const name = pod.metadata?.name ?? 'pod';
      const namespace = pod.metadata?.namespace ?? 'default';
      const env = await resolveEnv(core, pod, container.env ?? []);
      // One loopback port per declared container port; SPO_PORT and SPO_HANDLER_PORT map through it.
      const ports = await podPorts(pod);
      const port = ports.get(Number(env.SPO_PORT)) ?? (await freePort());
      const handlerPort = env.SPO_HANDLER_PORT === undefined ? undefined : ports.get(Number(env.SPO_HANDLER_PORT));
      const shared: Record<string, string> = { SPO_PORT: String(port), ...(handlerPort ? { SPO_HANDLER_PORT: String(handlerPort) } : {}) };
      // No command: the project image's entrypoint, `tini -- node` (tini has no local part to play).
      const argv = [...(container.command ?? ['node']), ...(container.args ?? [])];
      if (argv[0] !== 'node' || !argv[1]) throw new Error(`pod ${id}: expected a command 'node <entry>', got ${JSON.stringify(argv)}`);
      const kubeconfig = await this.serviceAccountKubeconfig(pod);
      const record = startProcess({
        name: `pod-${namespace}-${name}`,
        bin: process.execPath,
        args: [path.join(repoRoot, argv[1]), ...argv.slice(2)],
        runDir: this.options.runDir,
        cwd: repoRoot,
        env: {
          ...process.env,
          ...env,
          ...this.options.env,
          POD_NAME: name,
          POD_NAMESPACE: namespace,
          SPO_WORKER_NAME: name,
          SPO_POD_NAME: name,
          ...shared,
          SPO_METRICS_PORT: '0',
          SPO_ADVERTISE_ENDPOINT: `127.0.0.1:${port}`,
          ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
        },
      });
      const worker: LocalWorker = { pod: name, namespace, port, endpoint: `127.0.0.1:${port}`, ports, record };
      this.workers.set(id, worker);
      this.log(`started pod ${id} as pid ${record.pid} on 127.0.0.1:${port}`);
      const others = pod.spec?.containers.slice(1) ?? [];
      if (others.length > 0) worker.supervisor = await this.startOthers(core, pod, others, worker, ports, shared);
    } finally {
      this.starting.delete(id);
    }
  }

  /** Runs the pod's other containers (those with a local stand-in) and supervises the pod. */
  private async startOthers(
    core: CoreV1Api,
    pod: V1Pod,
    others: V1Container[],
    worker: LocalWorker,
    ports: Map<number, number>,
    shared: Record<string, string>,
  ): Promise<PodSupervisor> {
    const name = pod.metadata?.name ?? 'pod';
    const namespace = pod.metadata?.namespace ?? 'default';
    const containers: SupervisedContainer[] = [];
    for (const c of others) {
      const local = (this.options.localImages ?? LOCAL_IMAGES).find((l) => l.image.test(c.image ?? ''));
      if (!local) {
        this.log(`pod ${namespace}/${name}: container ${c.name} (image ${c.image}) has no local stand-in; not run`);
        continue;
      }
      const [program, ...args] = await local.command();
      const env = { ...process.env, ...(await resolveEnv(core, pod, c.env ?? [])), ...this.options.env, ...shared, POD_NAME: name };
      const start = () =>
        startProcess({
          name: `pod-${namespace}-${name}-${c.name}`,
          bin: resolveProgram(program ?? ''),
          args: [...args, ...(c.args ?? [])],
          runDir: this.options.runDir,
          cwd: repoRoot,
          env,
        });
      const record = start();
      this.log(`started container ${c.name} of pod ${namespace}/${name} as pid ${record.pid} (${JSON.stringify(shared)})`);
      const preStop = preStopGet(c, ports);
      containers.push({ name: c.name, record, restarts: 0, start, startedAt: Date.now(), ...(preStop ? { preStop } : {}) });
    }
    const probes: ReadinessProbe[] = [];
    for (const c of pod.spec?.containers ?? []) {
      const port = probePort(c, c.readinessProbe, ports);
      if (port !== undefined && c.readinessProbe?.httpGet?.path)
        probes.push({ container: c.name, port, path: c.readinessProbe.httpGet.path });
    }
    const supervisor = new PodSupervisor({
      core,
      name,
      namespace,
      runtime: () => (this.workers.get(`${namespace}/${name}`) === worker ? worker.record : undefined),
      containers,
      probes,
      log: (line) => this.log(line),
    });
    supervisor.start();
    return supervisor;
  }

  /** A kubeconfig with a bound token of the pod's ServiceAccount (what a pod would mount). */
  private async serviceAccountKubeconfig(pod: V1Pod): Promise<string | undefined> {
    if (pod.spec?.automountServiceAccountToken === false || !this.core) return undefined;
    const namespace = pod.metadata?.namespace ?? 'default';
    const account = pod.spec?.serviceAccountName ?? 'default';
    const request = await this.core.createNamespacedServiceAccountToken({
      name: account,
      namespace,
      body: {
        spec: {
          audiences: [],
          expirationSeconds: 24 * 3600,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
        },
      },
    });
    const file = path.join(this.options.runDir, 'pod-kubeconfigs', `${namespace}-${pod.metadata?.name}.yaml`);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: { server: "${this.server}", certificate-authority-data: "${this.caData}" }
users:
- name: ${account}
  user: { token: "${request.status?.token ?? ''}" }
contexts:
- name: local
  context: { cluster: local, user: ${account}, namespace: ${namespace} }
current-context: local
`,
      { mode: 0o600 },
    );
    return file;
  }

  /**
   * What a kubelet does on a pod's deletion: SIGTERM, wait for the process (bounded by the
   * grace period), then remove the pod object at once. kwok alone would keep a Terminating pod
   * for its whole grace period, and `kubectl drain` would wait for a process long gone.
   */
  private async terminate(core: CoreV1Api, pod: V1Pod): Promise<void> {
    const id = key(pod);
    if (this.terminating.has(id)) return;
    this.terminating.add(id);
    try {
      await this.stopWorker(id, graceMs(pod));
      await core
        .deleteNamespacedPod({ name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? 'default', gracePeriodSeconds: 0 })
        .catch(() => undefined);
    } finally {
      this.terminating.delete(id);
    }
  }

  /**
   * As a kubelet: every container at once, each after its preStop hook (the handler's waits for the
   * worker's drain), SIGTERM, then SIGKILL once the grace period, the hook's time included, is over.
   */
  async stopWorker(id: string, graceMs = 30_000): Promise<void> {
    const worker = this.workers.get(id);
    if (!worker) return;
    this.workers.delete(id);
    this.log(`stopping worker for pod ${id}`);
    worker.supervisor?.stop();
    const until = Date.now() + graceMs;
    const stopContainer = async (c: SupervisedContainer) => {
      if (c.preStop && isRunning(c.record) && !(await httpGetSucceeds(c.preStop.port, c.preStop.path, graceMs)))
        this.log(`pod ${id}: the preStop hook of container ${c.name} failed`);
      await stopProcess(c.record, Math.max(0, until - Date.now()));
    };
    await Promise.all([stopProcess(worker.record, graceMs), ...(worker.supervisor?.containers ?? []).map(stopContainer)]);
  }

  /** Kills a worker without a drain (a crash), for fault tests. */
  killWorker(podName: string): void {
    for (const [id, worker] of this.workers) {
      if (worker.pod === podName && isRunning(worker.record)) {
        process.kill(worker.record.pid, 'SIGKILL');
        this.workers.delete(id);
        worker.supervisor?.stop();
        for (const c of worker.supervisor?.containers ?? []) if (isRunning(c.record)) process.kill(c.record.pid, 'SIGKILL');
      }
    }
  }

  /** Kills one container of a pod (a crash of the handler, for fault tests); its supervisor restarts it. */
  killContainer(podName: string, container: string): number | undefined {
    for (const worker of this.workers.values()) {
      const c = worker.pod === podName ? worker.supervisor?.containers.find((x) => x.name === container) : undefined;
      if (c && isRunning(c.record)) {
        process.kill(c.record.pid, 'SIGKILL');
        return c.record.pid;
      }
    }
    return undefined;
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

function graceMs(pod: V1Pod): number {
  return (pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
}

function key(pod: V1Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}
