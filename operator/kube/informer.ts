// A list-then-watch cache per resource, built on client-node's Watch (the HTTP watch stream).
// Why not makeInformer/ListWatch: in 2.0.1 an error other than 410 leaves it stopped, a
// rebuild after a silent watch loses deletes that happened meanwhile (a new ListWatch has an
// empty cache), a list that hangs is never interrupted, and stop() during a list still starts
// a watch. Here one loop owns the whole cycle:
//   list (with a timeout) -> diff against the cache (emitting add/update/delete) -> watch from
//   the list's resourceVersion with bookmarks -> on a clean close or client timeout, watch again
//   from the last resourceVersion; on 410 relist at once; on any other error relist after a
//   jittered exponential backoff (1 s .. 30 s).
// A watchdog interrupts a list or watch that has shown no activity for watchdogMs, and a resync
// re-emits every cached object so handlers re-enqueue every key. Handlers should only enqueue
// keys: they are called synchronously and never awaited; they must accept a delete of an
// object they never saw (a relist replays deletes) and repeated adds/updates.
// Not re-exported by the package index; the package has no exports map, so the deep path is public.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../observability/logger.ts';
import { backoffDelay, realClock, sleep, type Clock, type TimerHandle } from './clock.ts';
import { errorMessage, isGone } from './errors.ts';
import { counter } from './metrics.ts';
import type { BackoffOptions } from './workqueue.ts';

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';
export type InformerHandler<T> = (event: InformerEvent, obj: T) => void;

/** The part of client-node's Watch the informer uses (tests pass a fake). */
export interface WatchLike {
  watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface InformerOptions<T extends KubernetesObject> {
  /** Metrics and log label, e.g. "sessionpools". */
  resource: string;
  /** Collection path to watch, e.g. "/api/v1/configmaps" or "/apis/apps/v1/namespaces/ns/deployments". */
  path: string;
  /** Lists the same collection (pass the selectors on). */
  list: (options: ListOptions) => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  kubeConfig?: KubeConfig;
  /** Instead of kubeConfig (tests). */
  watch?: WatchLike;
  /** Rebuild a list or watch silent for this long. Default 120 s (quiet watches reconnect every 30 s anyway). */
  watchdogMs?: number;
  /** Re-emit every cached object this often; 0 disables. Default 5 min. */
  resyncMs?: number;
  /** Give up on a list after this long. Default 60 s. */
  listTimeoutMs?: number;
  /** Restart backoff. Default 1 s .. 30 s, jitter ± 30 %. */
  backoff?: Partial<BackoffOptions>;
  /** Turns a raw watch object into T. Default: client-node's ObjectSerializer for built-in kinds, as is otherwise. */
  deserialize?: (raw: unknown) => T;
  registry?: Registry;
  logger?: Logger;
  clock?: Clock;
  random?: () => number;
}

export const DEFAULT_RESTART_BACKOFF: BackoffOptions = { baseMs: 1_000, maxMs: 30_000, jitter: 0.3 };

/** "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const namespace = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return namespace ? `${namespace}/${name}` : name;
}

export function parseKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash === -1 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

type Interrupt = 'stop' | 'watchdog';
type WatchEnd = { kind: 'closed' } | { kind: 'error'; err: unknown } | { kind: Interrupt };

/** A watch that lasted this long resets the restart backoff. */
const HEALTHY_WATCH_MS = 60_000;
/** A watch closed sooner than this without any event is treated as a failure. */
const QUICK_CLOSE_MS = 1_000;

const knownTypes = new Map<string, boolean>();

/** Deserializes built-in kinds the way the generated list calls do (Dates, typed classes). */
export function defaultDeserialize<T>(raw: unknown): T {
  const obj = raw as KubernetesObject;
  if (!obj || typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') return raw as T;
  const [groupOrVersion, maybeVersion] = obj.apiVersion.split('/');
  const version = maybeVersion ?? groupOrVersion ?? '';
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${obj.kind}`;
  let known = knownTypes.get(type);
  if (known === undefined) {
    const probe = {};
    known = (ObjectSerializer.deserialize(probe, type) as unknown) !== probe;
    knownTypes.set(type, known);
  }
  return (known ? ObjectSerializer.deserialize(raw, type) : raw) as T;
}

export class Informer<T extends KubernetesObject> {
  readonly resource: string;
  private readonly options: InformerOptions<T>;
  private readonly watcher: WatchLike;
  private readonly cache = new Map<string, T>();
  private handlers: InformerHandler<T>[] = [];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly watchdogMs: number;
  private readonly resyncMs: number;
  private readonly listTimeoutMs: number;
  private readonly deserialize: (raw: unknown) => T;
  private readonly eventsTotal;
  private readonly restartsTotal;
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private running = false;
  private stopController = new AbortController();
  private interrupt: ((reason: Interrupt) => void) | undefined;
  private lastActivity = 0;
  private watchdogTimer: TimerHandle | undefined;
  private resyncTimer: TimerHandle | undefined;
  private loop: Promise<void> | undefined;
  private failures = 0;
  private restarts = 0;
  private watchEvents = 0;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.resource = options.resource;
    if (!options.watch && !options.kubeConfig) throw new Error('Informer needs kubeConfig or watch');
    this.watcher = options.watch ?? new Watch(options.kubeConfig as KubeConfig);
    this.log = options.logger ?? createLogger('informer', { resource: options.resource });
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.backoff = { ...DEFAULT_RESTART_BACKOFF, ...options.backoff };
    this.watchdogMs = options.watchdogMs ?? 120_000;
    this.resyncMs = options.resyncMs ?? 300_000;
    this.listTimeoutMs = options.listTimeoutMs ?? 60_000;
    this.deserialize = options.deserialize ?? defaultDeserialize;
    this.eventsTotal = counter(options.registry, 'spo_operator_watch_events_total', 'Watch events received, by resource and type', [
      'resource',
      'type',
    ]);
    this.restartsTotal = counter(
      options.registry,
      'spo_operator_watch_restarts_total',
      'List/watch restarts after errors or a silent watch',
      ['resource'],
    );
  }

  /**
   * Adds a handler; call before start() to see the initial adds. Returns a function that
   * removes it (controllers that share an informer and stop on losing leadership).
   */
  on(handler: InformerHandler<T>): () => void {
    this.handlers = [...this.handlers, handler];
    // Copy on write: an emit in progress keeps iterating the array it started with.
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is in the cache; rejects after timeoutMs if given. */
  waitForSync(timeoutMs?: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.syncWaiters.push(waiter);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.syncWaiters = this.syncWaiters.filter((w) => w !== waiter);
          reject(new Error(`informer ${this.resource} not synced after ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** Restarts (errors, 410, watchdog) since start: for tests and health. */
  restartCount(): number {
    return this.restarts;
  }

  latestResourceVersion(): string {
    return this.resourceVersion;
  }

  /** Starts the list/watch loop in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopController = new AbortController();
    this.lastActivity = this.clock.now();
    this.scheduleWatchdog();
    this.scheduleResync();
    this.loop = this.run().catch((err: unknown) => {
      this.log.error({ err: errorMessage(err) }, 'informer loop crashed');
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopController.abort();
    this.interrupt?.('stop');
    if (this.watchdogTimer !== undefined) this.clock.clearTimeout(this.watchdogTimer);
    if (this.resyncTimer !== undefined) this.clock.clearTimeout(this.resyncTimer);
    await this.loop;
  }

  /** Re-emits every cached object as 'resync' (also runs every resyncMs). */
  resync(): void {
    if (!this.synced) return;
    for (const obj of this.cache.values()) this.emit('resync', obj);
  }

  private async run(): Promise<void> {
    let relist = true;
    while (this.running) {
      if (relist) {
        const listed = await this.listOnce();
        if (!this.running) return;
        if (!listed.ok) {
          await this.restartAfter(listed.err, 'list failed');
          continue;
        }
        relist = false;
      }
      const startedAt = this.clock.now();
      const eventsBefore = this.watchEvents;
      const end = await this.watchOnce();
      if (!this.running || end.kind === 'stop') return;
      const lastedMs = this.clock.now() - startedAt;
      if (lastedMs >= HEALTHY_WATCH_MS) this.failures = 0;
      if (end.kind === 'watchdog') {
        this.countRestart();
        this.log.warn({ silentMs: this.watchdogMs }, 'watch silent: rebuilding');
        relist = true;
      } else if (end.kind === 'closed' || (end.kind === 'error' && isTimeout(end.err))) {
        // The server ended the watch or the client's inactivity timeout did: carry on from the
        // last resourceVersion, unless the server said it is too old (410 ERROR event).
        if (!this.resourceVersion) {
          this.countRestart();
          relist = true;
        } else if (this.watchEvents === eventsBefore && lastedMs < QUICK_CLOSE_MS) {
          // A watch that closes at once, again and again, must not spin: back off.
          await this.restartAfter(new Error(`watch closed after ${lastedMs} ms without events`), 'watch closed at once');
        }
      } else if (end.kind === 'error' && isGone(end.err)) {
        this.countRestart();
        this.resourceVersion = '';
        relist = true;
      } else {
        relist = true;
        await this.restartAfter(end.kind === 'error' ? end.err : end.kind, 'watch failed');
      }
    }
  }

  private async restartAfter(err: unknown, what: string): Promise<void> {
    this.countRestart();
    this.failures++;
    const delay = backoffDelay(this.failures, this.backoff, this.random);
    this.log.warn({ err: errorMessage(err), retryInMs: delay, attempt: this.failures }, what);
    await sleep(this.clock, delay, this.stopController.signal);
  }

  private countRestart(): void {
    this.restarts++;
    this.restartsTotal.inc({ resource: this.resource });
  }

  /** Interrupts (watchdog, stop, timeout) count as errors. */
  private async listOnce(): Promise<{ ok: true } | { ok: false; err: unknown }> {
    this.lastActivity = this.clock.now();
    let timer: TimerHandle | undefined;
    try {
      const interrupted = new Promise<never>((_, reject) => {
        this.interrupt = (reason) => reject(new Error(`list interrupted: ${reason}`));
        timer = this.clock.setTimeout(() => reject(new Error(`list timed out after ${this.listTimeoutMs} ms`)), this.listTimeoutMs);
      });
      const selectors: ListOptions = {};
      if (this.options.labelSelector !== undefined) selectors.labelSelector = this.options.labelSelector;
      if (this.options.fieldSelector !== undefined) selectors.fieldSelector = this.options.fieldSelector;
      const listing = this.options.list(selectors);
      listing.catch(() => undefined); // an interrupted list may still fail later
      const result = await Promise.race([listing, interrupted]);
      if (!this.running) return { ok: false, err: new Error('stopped') };
      this.applyList(result);
      return { ok: true };
    } catch (err) {
      return { ok: false, err };
    } finally {
      this.interrupt = undefined;
      if (timer !== undefined) this.clock.clearTimeout(timer);
    }
  }

  private applyList(result: KubernetesListObject<T>): void {
    const fresh = new Map<string, T>();
    for (const item of result.items ?? []) fresh.set(objectKey(item), item);
    for (const [key, old] of [...this.cache]) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    for (const [key, item] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.emit('add', item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.emit('update', item);
    }
    this.resourceVersion = result.metadata?.resourceVersion ?? '';
    this.lastActivity = this.clock.now();
    if (!this.synced) {
      this.synced = true;
      for (const wake of this.syncWaiters.splice(0)) wake();
    }
    this.log.debug({ items: fresh.size, resourceVersion: this.resourceVersion }, 'listed');
  }

  private watchOnce(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let finished = false;
      let controller: AbortController | undefined;
      let sawEvent = false;
      const finish = (end: WatchEnd): void => {
        if (finished) return;
        finished = true;
        this.interrupt = undefined;
        controller?.abort();
        resolve(end);
      };
      this.interrupt = (reason) => finish({ kind: reason });
      this.lastActivity = this.clock.now();
      const params: Record<string, string | number | boolean | undefined> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
      };
      const onEvent = (phase: string, raw: unknown): void => {
        if (finished) return;
        this.lastActivity = this.clock.now();
        this.watchEvents++;
        if (!sawEvent) {
          sawEvent = true;
          this.failures = 0; // the watch works again: the next error starts the backoff over
        }
        this.handleWatchEvent(phase, raw);
      };
      const onDone = (err: unknown): void => finish(err ? { kind: 'error', err } : { kind: 'closed' });
      let started: Promise<AbortController>;
      try {
        started = this.watcher.watch(this.options.path, params, onEvent, onDone);
      } catch (err) {
        finish({ kind: 'error', err });
        return;
      }
      started.then(
        (c) => {
          controller = c;
          if (finished) c.abort();
        },
        (err: unknown) => finish({ kind: 'error', err }),
      );
    });
  }

  private handleWatchEvent(phase: string, raw: unknown): void {
    this.eventsTotal.inc({ resource: this.resource, type: phase.toLowerCase() });
    if (phase === 'ERROR') {
      const status = raw as { code?: number; message?: string };
      this.log.info({ code: status.code, message: status.message }, 'watch error event');
      if (status.code === 410) this.resourceVersion = ''; // the server closes the watch next; relist then
      return;
    }
    const rv = (raw as KubernetesObject | undefined)?.metadata?.resourceVersion;
    if (phase === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const obj = this.deserialize(raw);
    const key = objectKey(obj);
    if (phase === 'ADDED' || phase === 'MODIFIED') {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', obj);
    } else if (phase === 'DELETED') {
      this.cache.delete(key);
      this.emit('delete', obj); // also for objects never seen: handlers must accept that
    }
    if (rv) this.resourceVersion = rv;
  }

  private emit(event: InformerEvent, obj: T): void {
    for (const handler of this.handlers) {
      try {
        handler(event, obj);
      } catch (err) {
        this.log.error({ err: errorMessage(err), event, key: objectKey(obj) }, 'informer handler threw');
      }
    }
  }

  private scheduleWatchdog(): void {
    const every = Math.max(10, Math.floor(this.watchdogMs / 4));
    this.watchdogTimer = this.clock.setTimeout(() => {
      if (!this.running) return;
      if (this.clock.now() - this.lastActivity > this.watchdogMs) {
        this.lastActivity = this.clock.now();
        this.interrupt?.('watchdog');
      }
      this.scheduleWatchdog();
    }, every);
  }

  private scheduleResync(): void {
    if (this.resyncMs <= 0) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      if (!this.running) return;
      this.resync();
      this.scheduleResync();
    }, this.resyncMs);
  }
}

function isTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'TimeoutError';
}

/** A handler that enqueues the object's key (or keys mapped from it) on every event. */
export function enqueueKeys<T extends KubernetesObject>(
  queue: { add(key: string): void },
  toKeys: (obj: T) => string | string[] | undefined = objectKey,
): InformerHandler<T> {
  return (_event, obj) => {
    const keys = toKeys(obj);
    if (keys === undefined) return;
    for (const key of Array.isArray(keys) ? keys : [keys]) queue.add(key);
  };
}
