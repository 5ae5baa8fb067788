// What every part of the store shares: the cluster client, the key layout, resolved options,
// metrics and logger, and the one path every Redis call takes (retry, durability, metrics).
import { Cluster, type ClusterOptions, type Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import { createLogger } from '../observability/logger.ts';
import { defaultRegistry } from '../observability/metrics.ts';
import { DegradedState } from './degraded.ts';
import { ReplicaAckTimeoutError, SessionCorruptedError, SessionStoreError, StoreClosedError, StoreUnavailableError } from './errors.ts';
import { redisConnectionOptions } from './connection.ts';
import { indexBucket, keyLayout, keySlot, type KeyLayout } from './keys.ts';
import { isNoScript, scripts, type LuaReply, type LuaScript } from './lua.ts';
import { storeMetrics, type StoreMetrics } from './metrics.ts';
import type { SessionStoreOptions } from './options.ts';
import { DEFAULT_RETRY_POLICY, isTransient, rejected, retryAfter, type RetryPolicy } from './retry.ts';
import { InvalidArgumentError } from './errors.ts';
import { HEADER_MAX_BYTES, assertTtl, splitHeader, splitValue } from './codec.ts';

/** The cluster client's pool of node connections (not in ioredis' public types): the connection of a node by its `host:port`. */
interface ClusterInternals {
  connectionPool?: { getInstanceByKey(key: string): Redis | undefined };
}

/** A reply that the command was not run on this node: the slot is served elsewhere or the cluster is changing. */
function isRedirect(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const m = error.message;
  return m.startsWith('MOVED') || m.startsWith('ASK') || m.startsWith('TRYAGAIN') || m.startsWith('CLUSTERDOWN');
}

/** A script refused a session that is not a string or has no well-formed header: error reply `CORRUPT ...`. */
export function isCorruptReply(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('CORRUPT');
}

export interface ResolvedSettings {
  defaultTtlSeconds: number;
  anonymousTtlSeconds: number;
  pools: NonNullable<SessionStoreOptions['pools']>;
  maxDataBytes: number;
  defaultLeaseMs: number;
  durability: 'leader' | 'replica';
  replicaAckTimeoutMs: number;
  retry: RetryPolicy;
  degradedEnabled: boolean;
  probeIntervalMs: number;
  quarantineKeepMs: number;
  sweepBatchSize: number;
  sweepAuditSize: number;
  sweepAuditGraceMs: number;
  touchGranularityMs: number;
}

/**
 * How stale lastAccessedAt may be before a get or an update slides it and the TTL (docs/store.md "Touch
 * granularity"; a session's own is at most a tenth of its TTL). A minute, like Orleans' collection quantum:
 * at 1 s nearly every get of a session used seconds apart ran a TOUCH script (a write, replicated) after
 * its GET, for an expiry that is at most a minute earlier than the exact one instead.
 */
export const DEFAULT_TOUCH_GRANULARITY_MS = 60_000;

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`option ${name} must be a non-negative integer, got ${value}`);
  return value;
}

export function resolveSettings(options: SessionStoreOptions): ResolvedSettings {
  const settings: ResolvedSettings = {
    defaultTtlSeconds: options.defaultTtlSeconds ?? 3600,
    anonymousTtlSeconds: options.anonymousTtlSeconds ?? 300,
    pools: options.pools ?? {},
    maxDataBytes: positiveInt('maxDataBytes', options.maxDataBytes ?? 1024 * 1024),
    defaultLeaseMs: positiveInt('defaultLeaseMs', options.defaultLeaseMs ?? 30_000),
    durability: options.durability ?? 'leader',
    replicaAckTimeoutMs: positiveInt('replicaAckTimeoutMs', options.replicaAckTimeoutMs ?? 1000),
    retry: { ...DEFAULT_RETRY_POLICY, ...options.retry },
    degradedEnabled: options.degraded?.enabled ?? true,
    probeIntervalMs: positiveInt('degraded.probeIntervalMs', options.degraded?.probeIntervalMs ?? 500),
    quarantineKeepMs: positiveInt('quarantineKeepMs', options.quarantineKeepMs ?? 7 * 24 * 3600 * 1000),
    sweepBatchSize: positiveInt('sweepBatchSize', options.sweepBatchSize ?? 500) || 500,
    sweepAuditSize: positiveInt('sweepAuditSize', options.sweepAuditSize ?? 200),
    sweepAuditGraceMs: positiveInt('sweepAuditGraceMs', options.sweepAuditGraceMs ?? 15_000),
    touchGranularityMs: positiveInt('touchGranularityMs', options.touchGranularityMs ?? DEFAULT_TOUCH_GRANULARITY_MS),
  };
  assertTtl(settings.defaultTtlSeconds);
  assertTtl(settings.anonymousTtlSeconds);
  for (const pool of Object.values(settings.pools)) {
    if (pool.ttlSeconds !== undefined) assertTtl(pool.ttlSeconds);
    if (pool.anonymousTtlSeconds !== undefined) assertTtl(pool.anonymousTtlSeconds);
  }
  if (settings.durability !== 'leader' && settings.durability !== 'replica')
    throw new InvalidArgumentError(`unknown durability ${String(settings.durability)}`);
  return settings;
}

function parseNode(node: string): { host: string; port: number } {
  const index = node.lastIndexOf(':');
  const port = Number(node.slice(index + 1));
  if (index <= 0 || !Number.isInteger(port)) throw new InvalidArgumentError(`node ${JSON.stringify(node)} is not host:port`);
  return { host: node.slice(0, index), port };
}

export function buildCluster(options: SessionStoreOptions): Cluster {
  if (!options.nodes || options.nodes.length === 0) throw new InvalidArgumentError('createSessionStore needs `nodes` or `redis`');
  const commandTimeout = options.commandTimeoutMs ?? 2000;
  // A silent node is detected per connection (socketTimeout: a connection that owes replies and has
  // received nothing for this long is dropped, failing its commands as transient errors), not per
  // command: ioredis' commandTimeout arms and clears a timer for every command, and its clearing deletes
  // a property of the command object, which V8 then handles more slowly. A WAIT for a replica blocks its
  // connection, so the timeout also covers the longest WAIT.
  const socketTimeout =
    options.durability === 'replica' ? Math.max(commandTimeout, (options.replicaAckTimeoutMs ?? 1000) + 1000) : commandTimeout;
  const defaults: ClusterOptions = {
    enableAutoPipelining: true,
    maxRedirections: 8,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 20,
    slotsRefreshTimeout: 1000,
    slotsRefreshInterval: 2000,
    clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
    // No CLIENT SETINFO: two fewer round trips per connection, one command fewer in a pool's ACL.
    // Auto-pipelining on each node's connection too: the hot path sends on them directly (StoreCore.routed).
    redisOptions: { connectTimeout: 1000, socketTimeout, maxRetriesPerRequest: 1, disableClientInfo: true, enableAutoPipelining: true },
  };
  return new Cluster(options.nodes.map(parseNode), {
    ...defaults,
    ...options.clusterOptions,
    redisOptions: {
      ...defaults.redisOptions,
      ...(options.connection ? redisConnectionOptions(options.connection) : {}),
      ...options.clusterOptions?.redisOptions,
    },
  });
}

export class StoreCore {
  readonly redis: Cluster;
  readonly ownsClient: boolean;
  readonly keys: KeyLayout;
  readonly settings: ResolvedSettings;
  readonly metrics: StoreMetrics;
  readonly logger: Logger;
  readonly degraded: DegradedState;
  closed = false;
  /** Master clock minus this process' clock (ms), as last seen in a touch reply: lets a get judge, from the
   *  lastAccessedAt it read, whether a touch is due without asking the master. */
  clockOffsetMs = 0;
  /** Called when a transient error outlived its retries (the store enters degraded mode). */
  onUnreachable: (error: unknown) => void = () => undefined;

  constructor(options: SessionStoreOptions) {
    this.settings = resolveSettings(options);
    this.keys = keyLayout(options.keyPrefix ?? 'spo');
    this.ownsClient = !options.redis;
    this.redis = options.redis ?? buildCluster(options);
    this.redis.on('error', (error: Error) => this.logger.debug({ err: error.message }, 'redis client error'));
    this.metrics = storeMetrics(options.registry ?? defaultRegistry());
    this.logger = options.logger ?? createLogger('session-store');
    this.degraded = new DegradedState(options.degraded?.cacheSize ?? 10_000, options.degraded?.journalSize ?? 1_000);
  }

  /** Runs one Redis step with retries; a transient error that persists becomes StoreUnavailableError.
   *  The first attempt runs directly: the retry machinery is built only when it fails. */
  exec<T>(op: string, fn: () => Promise<T>, retry: RetryPolicy = this.settings.retry): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError('the session store is closed'));
    const started = Date.now();
    let first: Promise<T>;
    try {
      first = fn();
    } catch (error) {
      first = rejected(error);
    }
    return first.then(undefined, (error: unknown) => this.recover(op, fn, retry, error, started));
  }

  script(op: string, script: LuaScript, keys: string[], args: (string | number)[], retry?: RetryPolicy): Promise<LuaReply> {
    if (this.closed) return Promise.reject(new StoreClosedError('the session store is closed'));
    const started = Date.now();
    // The first attempt is a bare EVALSHA, on the slot's master directly: a node without the script yet
    // (NOSCRIPT) and every other failure are handled below, through the cluster client.
    return this.routed(keySlot(keys[0]!), (client) => script.send(client, keys, args)).then(undefined, (error: unknown) =>
      this.scriptFailed(op, script, keys, args, retry ?? this.settings.retry, error, started),
    );
  }

  /**
   * Sends one command for a key of `slot` on the connection of the slot's master, when it is ready and
   * auto-pipelined, else through the cluster client. Direct, the command skips the cluster client's
   * per-command routing (finding the key in the arguments, hashing it three times, grouping by node); it
   * still goes through the node's auto-pipeline (one write per node per tick). A redirection (the slot
   * moved, MOVED/ASK/TRYAGAIN/CLUSTERDOWN: the command was not run) is sent again through the cluster
   * client, which follows it and refreshes its slots. Other failures are the caller's, as before.
   */
  routed<T>(slot: number, send: (client: Cluster | Redis) => Promise<T>): Promise<T> {
    const node = this.masterOf(slot);
    if (!node) return send(this.redis);
    return send(node).then(undefined, (error: unknown) => {
      if (!isRedirect(error)) throw error;
      this.slotsMoved(error);
      return send(this.redis);
    });
  }

  /**
   * A MOVED reply reached the store: the slot map is out of date. ioredis follows a lone command's MOVED
   * and refreshes its map, but an auto-pipelined batch whose commands got different redirections (a
   * failover, with the old master still up) fails each command with its own MOVED and learns nothing:
   * every retry would go to the old master again until the periodic refresh. Refresh now (ioredis runs
   * one refresh at a time), so the retry goes to the new master.
   */
  private slotsMoved(error: unknown): void {
    if (error instanceof Error && error.message.startsWith('MOVED')) this.redis.refreshSlotsCache();
  }

  private masterOf(slot: number): Redis | undefined {
    const nodeKey = this.redis.slots[slot]?.[0];
    if (nodeKey === undefined) return undefined;
    const node = (this.redis as unknown as ClusterInternals).connectionPool?.getInstanceByKey(nodeKey);
    return node?.status === 'ready' && node.options.enableAutoPipelining === true ? node : undefined;
  }

  /** After a failed first EVALSHA: EVAL on NOSCRIPT, quarantine on CORRUPT, retries for transient errors. */
  private scriptFailed(
    op: string,
    script: LuaScript,
    keys: string[],
    args: (string | number)[],
    retry: RetryPolicy,
    error: unknown,
    started: number,
  ): Promise<LuaReply> {
    const attempt = () => script.run(this.redis, keys, args);
    const corruptOr = (failure: unknown) => {
      if (isCorruptReply(failure)) return this.corrupted(keys[0]!);
      throw failure;
    };
    // NOSCRIPT: the EVALSHA already failed, so EVAL at once (not run, which would send EVALSHA again).
    const first = isNoScript(error) ? script.eval(this.redis, keys, args) : rejected<LuaReply>(error);
    return first
      .then(undefined, (failure: unknown) =>
        isCorruptReply(failure) ? this.corrupted(keys[0]!) : this.recover(op, attempt, retry, failure, started),
      )
      .catch(corruptOr);
  }

  /** The header parts of a stored session, read without its data (the value's first HEADER_MAX_BYTES):
   *  undefined when absent, null when present but unreadable (not a string, or no well-formed header). */
  headerParts(pool: string, id: string): Promise<string[] | null | undefined> {
    return this.redis.getrange(this.keys.session(pool, id), 0, HEADER_MAX_BYTES - 1).then(
      // A session value is never empty: GETRANGE answers '' for an absent key.
      (prefix) => (prefix === '' ? undefined : splitHeader(splitValue(prefix)?.header)),
      (error: unknown) => {
        if (error instanceof Error && error.message.startsWith('WRONGTYPE')) return null;
        throw error;
      },
    );
  }

  /** A script found the session's header malformed: quarantine the session and throw SessionCorruptedError. */
  private async corrupted(sessionKey: string): Promise<never> {
    // `<prefix>:s:{<pool>|<id>}`: the pool ends at the `|` (neither part holds one).
    const [pool = '', id = ''] = sessionKey.slice(sessionKey.indexOf('{') + 1, -1).split('|');
    throw await this.quarantine(pool, id, 'session malformed');
  }

  /** Moves a corrupted session aside (key `quarantine(pool, id)`, kept quarantineKeepMs), counts and logs it,
   *  drops its pool-index entry, and returns the error to throw. */
  async quarantine(pool: string, id: string, reason: string): Promise<SessionCorruptedError> {
    const { keys, metrics, logger, settings } = this;
    const qkey = keys.quarantine(pool, id);
    await this.script('quarantine', scripts.quarantine, [keys.session(pool, id), qkey], [settings.quarantineKeepMs]);
    this.degraded.cache.delete(keys.session(pool, id));
    metrics.corruptions.inc();
    logger.warn({ sessionId: id, pool, reason, quarantineKey: qkey }, 'corrupted session quarantined');
    await this.exec('quarantine', () => this.redis.zrem(keys.poolIndex(pool, indexBucket(id)), id)).catch(() => undefined);
    return new SessionCorruptedError(id, reason, qkey);
  }

  /** After a failed first attempt: retries transient errors within the policy, then maps the outcome. */
  private async recover<T>(op: string, fn: () => Promise<T>, retry: RetryPolicy, error: unknown, started: number): Promise<T> {
    try {
      return await retryAfter(fn, retry, { onRetry: (e, attempt, delayMs) => this.onRetry(op, e, attempt, delayMs) }, error, started);
    } catch (failure) {
      if (failure instanceof SessionStoreError) throw failure;
      if (isTransient(failure)) {
        this.onUnreachable(failure);
        throw new StoreUnavailableError(`${op}: Redis is unreachable (${failure instanceof Error ? failure.message : String(failure)})`, {
          cause: failure,
        });
      }
      throw failure;
    }
  }

  private onRetry(op: string, error: unknown, attempt: number, delayMs: number): void {
    this.slotsMoved(error);
    this.metrics.retries.inc({ op });
    this.logger.debug(
      { op, attempt, delayMs, err: error instanceof Error ? error.message : String(error) },
      'retrying after a transient Redis error',
    );
  }

  /** Durability 'replica': WAIT 1 on the master that owns the key's slot (the connection that wrote). */
  async afterWrite(key: string, sessionId: string): Promise<void> {
    if (this.settings.durability !== 'replica') return;
    const nodeKey = this.redis.slots[keySlot(key)]?.[0];
    const node = this.redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
    if (!node) throw new ReplicaAckTimeoutError(sessionId, this.settings.replicaAckTimeoutMs);
    let acks: unknown;
    try {
      acks = await node.call('WAIT', '1', String(this.settings.replicaAckTimeoutMs));
    } catch (error) {
      throw new ReplicaAckTimeoutError(sessionId, this.settings.replicaAckTimeoutMs, { cause: error });
    }
    if (typeof acks !== 'number' || acks < 1) throw new ReplicaAckTimeoutError(sessionId, this.settings.replicaAckTimeoutMs);
  }

  /** Durability 'replica' for many written keys: one WAIT per master that holds any of them. */
  async afterWriteMany(written: { key: string; sessionId: string }[]): Promise<void> {
    if (this.settings.durability !== 'replica' || written.length === 0) return;
    const byNode = new Map<string, { key: string; sessionId: string }>();
    for (const w of written) {
      const node = this.redis.slots[keySlot(w.key)]?.[0] ?? `?${w.key}`;
      if (!byNode.has(node)) byNode.set(node, w);
    }
    await Promise.all([...byNode.values()].map((w) => this.afterWrite(w.key, w.sessionId)));
  }

  ttlFor(pool: string, anonymous: boolean, explicit: number | undefined): number {
    if (explicit !== undefined) {
      assertTtl(explicit);
      return explicit;
    }
    const poolSettings = this.settings.pools[pool];
    return anonymous
      ? (poolSettings?.anonymousTtlSeconds ?? this.settings.anonymousTtlSeconds)
      : (poolSettings?.ttlSeconds ?? this.settings.defaultTtlSeconds);
  }
}
