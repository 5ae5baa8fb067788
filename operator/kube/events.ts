// Kubernetes Events (events.k8s.io/v1) about our objects, aggregated so a reconcile loop that
// hits the same problem every second cannot flood the apiserver: records with the same
// (involved object, type, reason) within the aggregation window (10 min) share one Event whose
// series.count grows. Repeats are coalesced: at most one PATCH per event every flushDelayMs
// (1 s), carrying the latest count and lastObservedTime (the note of an events.k8s.io Event is
// immutable: the first record's note stays). Recording never throws and never
// blocks the caller; write failures are logged.
import {
  PatchStrategy,
  V1MicroTime,
  setHeaderOptions,
  type EventsV1Api,
  type EventsV1Event,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { createLogger, type Logger } from '../observability/logger.ts';
import { realClock, type Clock, type TimerHandle } from './clock.ts';
import { errorMessage } from './errors.ts';

export type EventType = 'Normal' | 'Warning';

export type EventsApi = Pick<EventsV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

export interface EventRecorderOptions {
  api: EventsApi;
  /** Who reports, e.g. "session-pool-operator". */
  reportingController?: string;
  /** Which instance reports, e.g. the pod name. */
  reportingInstance: string;
  aggregateWindowMs?: number;
  flushDelayMs?: number;
  /** Aggregation entries kept at most (oldest dropped). Default 4096. */
  maxEntries?: number;
  clock?: Clock;
  logger?: Logger;
}

interface Entry {
  namespace: string;
  name: string;
  count: number;
  sentCount: number;
  lastObserved: number;
  created: Promise<boolean>;
  timer: TimerHandle | undefined;
  writing: Promise<void> | undefined;
}

const MAX_NOTE = 1024;

export class EventRecorder {
  private readonly options: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly windowMs: number;
  private readonly flushDelayMs: number;
  private readonly maxEntries: number;
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Set<Promise<unknown>>();
  private seq = 0;

  constructor(options: EventRecorderOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.log = options.logger ?? createLogger('events');
    this.windowMs = options.aggregateWindowMs ?? 600_000;
    this.flushDelayMs = options.flushDelayMs ?? 1_000;
    this.maxEntries = options.maxEntries ?? 4096;
  }

  /** Records an event about involved; identical (object, type, reason) records aggregate. */
  record(involved: KubernetesObject, type: EventType, reason: string, note: string, action: string = reason): void {
    const meta = involved.metadata ?? {};
    const namespace = meta.namespace || 'default';
    const key = `${involved.apiVersion}/${involved.kind}/${namespace}/${meta.name}/${meta.uid ?? ''}/${type}/${reason}`;
    const now = this.clock.now();
    const trimmed = note.length > MAX_NOTE ? `${note.slice(0, MAX_NOTE - 3)}...` : note;
    const existing = this.entries.get(key);
    if (existing && now - existing.lastObserved < this.windowMs) {
      existing.count++;
      existing.lastObserved = now;
      this.entries.delete(key); // keep the map in recency order
      this.entries.set(key, existing);
      this.scheduleUpdate(existing);
      return;
    }
    const name = `${meta.name ?? 'unknown'}.${(BigInt(now) * 1_000_000n + BigInt(this.seq++ % 1_000_000)).toString(16)}`;
    const event: EventsV1Event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: new V1MicroTime(now),
      reportingController: this.options.reportingController ?? 'session-pool-operator',
      reportingInstance: this.options.reportingInstance,
      action,
      reason,
      note: trimmed,
      type,
      regarding: {
        apiVersion: involved.apiVersion,
        kind: involved.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
    };
    const created = this.track(
      this.options.api.createNamespacedEvent({ namespace, body: event }).then(
        () => true,
        (err: unknown) => {
          this.log.warn({ err: errorMessage(err), reason, object: `${namespace}/${meta.name}` }, 'event not recorded');
          return false;
        },
      ),
    );
    this.entries.set(key, {
      namespace,
      name,
      count: 1,
      sentCount: 1,
      lastObserved: now,
      created,
      timer: undefined,
      writing: undefined,
    });
    this.prune(now);
  }

  /** Sends pending count updates now and resolves when every write has finished. */
  async flush(): Promise<void> {
    for (const entry of this.entries.values()) {
      if (entry.timer !== undefined) {
        this.clock.clearTimeout(entry.timer);
        entry.timer = undefined;
        void this.track(this.sendUpdate(entry));
      }
    }
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private scheduleUpdate(entry: Entry): void {
    if (entry.timer !== undefined) return;
    entry.timer = this.clock.setTimeout(() => {
      entry.timer = undefined;
      void this.track(this.sendUpdate(entry));
    }, this.flushDelayMs);
  }

  private async sendUpdate(entry: Entry): Promise<void> {
    if (entry.writing) await entry.writing; // one write per event at a time
    if (!(await entry.created) || entry.count === entry.sentCount) return;
    const count = entry.count;
    // note is immutable on events.k8s.io/v1 Events: the first record's note stays.
    const body = { series: { count, lastObservedTime: new V1MicroTime(entry.lastObserved) } };
    entry.writing = this.options.api
      .patchNamespacedEvent(
        { name: entry.name, namespace: entry.namespace, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      .then(
        () => {
          entry.sentCount = Math.max(entry.sentCount, count);
        },
        (err: unknown) => this.log.warn({ err: errorMessage(err), event: entry.name }, 'event count not updated'),
      );
    await entry.writing;
    entry.writing = undefined;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    promise.finally(() => this.pending.delete(promise)).catch(() => undefined);
    return promise;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - entry.lastObserved < this.windowMs) break;
      if (entry.timer === undefined) this.entries.delete(key);
      else if (this.entries.size <= this.maxEntries) break;
    }
  }
}
