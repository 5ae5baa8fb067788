// The part of a kubelet a multi-container pod needs here: containers besides the worker are
// restarted when they exit (restartPolicy Always, with a growing delay as CrashLoopBackOff),
// and the pod's Ready condition follows its containers: every process running and every
// httpGet readiness probe answering. kwok sets Ready once; this keeps it true to the processes.
import http from 'node:http';
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import { backoffDelay } from '../../operator/kube/clock.ts';
import { isRunning, type ProcessRecord } from './processes.ts';

export interface SupervisedContainer {
  name: string;
  record: ProcessRecord;
  restarts: number;
  /** Starts the container's process again (same ports, same environment). */
  start(): ProcessRecord;
  nextStartAt?: number;
  /** When the process was last started: it is not judged before its exec is done. */
  startedAt?: number;
  /** Its preStop httpGet hook (loopback port and path): asked, and answered, before its SIGTERM. */
  preStop?: { port: number; path: string };
}

/** Between spawn and exec a process still runs the spawner's executable: give it this long. */
const STARTING_MS = 1_000;

export interface ReadinessProbe {
  container: string;
  port: number;
  path: string;
}

export interface PodSupervisorOptions {
  core: CoreV1Api;
  name: string;
  namespace: string;
  /** The worker's process: watched for readiness, restarted by the kubelet's sync as before. */
  runtime: () => ProcessRecord | undefined;
  containers: SupervisedContainer[];
  probes: ReadinessProbe[];
  log: (line: string) => void;
  intervalMs?: number;
}

/** GET on loopback, as a kubelet's httpGet probe or hook: true on a 2xx or 3xx answer within timeoutMs. */
export function httpGetSucceeds(port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

export class PodSupervisor {
  private readonly o: PodSupervisorOptions;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;
  private lastReady: boolean | undefined;
  private lastReason = '';

  constructor(options: PodSupervisorOptions) {
    this.o = options;
  }

  get containers(): SupervisedContainer[] {
    return this.o.containers;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs ?? 500);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      const now = Date.now();
      for (const c of this.o.containers) {
        if (isRunning(c.record) || now - (c.startedAt ?? 0) < STARTING_MS) continue;
        if (c.nextStartAt === undefined) {
          c.nextStartAt = now + backoffDelay(c.restarts + 1, { baseMs: 1_000, maxMs: 10_000, jitter: 0 });
          this.o.log(`container ${c.name} of pod ${this.o.namespace}/${this.o.name} exited; restarting in ${c.nextStartAt - now} ms`);
        } else if (now >= c.nextStartAt && !this.stopped) {
          c.record = c.start();
          c.startedAt = Date.now();
          c.restarts++;
          c.nextStartAt = undefined;
          this.o.log(
            `restarted container ${c.name} of pod ${this.o.namespace}/${this.o.name} as pid ${c.record.pid} (restart ${c.restarts})`,
          );
        }
      }
      const { ready, reason } = await this.readiness();
      if (!this.stopped && (ready !== this.lastReady || reason !== this.lastReason)) await this.setReady(ready, reason);
    } finally {
      this.ticking = false;
    }
  }

  private async readiness(): Promise<{ ready: boolean; reason: string }> {
    const runtime = this.o.runtime();
    if (!runtime || !isRunning(runtime)) return { ready: false, reason: 'the worker container is not running' };
    const down = this.o.containers.filter((c) => !isRunning(c.record)).map((c) => c.name);
    if (down.length > 0) return { ready: false, reason: `containers not running: ${down.join(', ')}` };
    const results = await Promise.all(
      this.o.probes.map(async (p) => ((await httpGetSucceeds(p.port, p.path, 1_000)) ? undefined : p.container)),
    );
    const failing = results.filter((r): r is string => r !== undefined);
    if (failing.length > 0) return { ready: false, reason: `readiness probe failing: ${failing.join(', ')}` };
    return { ready: true, reason: '' };
  }

  private async setReady(ready: boolean, reason: string): Promise<void> {
    const status = ready ? 'True' : 'False';
    const now = new Date().toISOString();
    const condition = (type: string) => ({
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: now,
      reason: ready ? '' : 'ContainersNotReady',
      message: reason,
    });
    try {
      await this.o.core.patchNamespacedPodStatus(
        {
          name: this.o.name,
          namespace: this.o.namespace,
          body: { status: { conditions: [condition('Ready'), condition('ContainersReady')] } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
      if (this.lastReady !== ready) this.o.log(`pod ${this.o.namespace}/${this.o.name} ${ready ? 'ready' : `not ready: ${reason}`}`);
      this.lastReady = ready;
      this.lastReason = reason;
    } catch {
      /* the pod is gone or the apiserver busy: the next tick tries again */
    }
  }
}
