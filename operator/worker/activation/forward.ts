// Forwarding a session request to the worker that holds its activation: one hop, over kept-alive
// connections, marked with `x-spo-forwarded: <this worker>` so the receiver never forwards it again.
// The pool's workers and their endpoints come from the worker registry (store/workers.ts), read at
// each heartbeat and on a miss (at most once a second).
import { Http1Failure, Http1Pool } from '../contract/http1.ts';
import type { SessionStore, WorkerRegistration } from '../../store/types.ts';

export const FORWARDED_HEADER = 'x-spo-forwarded';
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on a reply recorded for an Idempotency-Key and sent again: the handler did not run. */
export const REPLAYED_HEADER = 'idempotent-replayed';
/** How long a new forwarding connection may take to open. */
const CONNECT_TIMEOUT_MS = 2_000;
/** The largest reply taken from a peer: a session (the pool's limit is far below) and its envelope. */
const MAX_REPLY_BYTES = 2 ** 30;
/** How long a refused connection marks a worker as gone. */
const REFUSED_MS = 5_000;

/** The pool's live workers by name, as the registry last listed them. */
export class WorkerDirectory {
  private readonly store: SessionStore;
  private readonly pool: string;
  private workers = new Map<string, WorkerRegistration>();
  private refreshedAt = 0;
  private refreshing: Promise<void> | undefined;
  /** Workers whose registered endpoint refused a connection, and when: nothing listens there. */
  private readonly refused = new Map<string, number>();

  constructor(store: SessionStore, pool: string) {
    this.store = store;
    this.pool = pool;
  }

  /** Takes a listing the caller already read (the heartbeat reads one). */
  update(list: WorkerRegistration[]): void {
    this.workers = new Map(list.map((w) => [w.worker, w]));
    this.refreshedAt = Date.now();
  }

  private async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.refreshedAt <= 1_000) return;
    this.refreshing ??= this.store
      .listWorkers(this.pool)
      .then((list) => this.update(list))
      .finally(() => (this.refreshing = undefined));
    await this.refreshing.catch(() => undefined);
  }

  /** Whether the last listing holds the worker, live and not draining (no store read). */
  listed(worker: string): boolean {
    const w = this.workers.get(worker);
    return w !== undefined && !w.draining;
  }

  /** Every other worker of the last listing, draining ones included (a draining worker may still hold
   *  sessions in memory until its drain has written them to the store); re-reads a listing over a second
   *  old, or at once with `fresh` (a worker registered since may hold the session). */
  async peers(self: string, fresh = false): Promise<{ worker: string; endpoint: string }[]> {
    await this.refresh(fresh);
    return [...this.workers.values()]
      .filter((w) => w.worker !== self && w.endpoint !== '')
      .map((w) => ({ worker: w.worker, endpoint: w.endpoint }));
  }

  /** The live, non-draining worker's endpoint; re-reads the registry on a miss when the listing is over a second old. */
  async endpointOf(worker: string): Promise<string | undefined> {
    if (!this.workers.has(worker)) await this.refresh();
    const w = this.workers.get(worker);
    return w && !w.draining ? w.endpoint : undefined;
  }

  /** True when a fresh listing shows the worker draining or does not hold it (or its endpoint refused a
   *  connection within REFUSED_MS); false when it is live, or when the listing could not be read. */
  async drainingOrGone(worker: string): Promise<boolean> {
    if (await this.isGone(worker)) return true;
    return Date.now() - this.refreshedAt < 1_000 && this.workers.get(worker)?.draining === true;
  }

  /** The worker's registered endpoint refused a connection: no process listens there (killed, or
   *  restarting). Its leases may be taken over at once rather than after its registration lapses. */
  markRefused(worker: string): void {
    this.refused.set(worker, Date.now());
    if (this.refused.size > 1_000) this.refused.delete(this.refused.keys().next().value!);
  }

  /** True when the worker has no live registration (its heartbeats stopped: the pool's failure detector),
   *  read afresh: a worker registered since the last listing is not taken for gone; or when its
   *  endpoint refused a connection within the last REFUSED_MS. Either way the takeover is a
   *  compare-and-swap on (owner, epoch), and the fence refuses any late write of the old owner. */
  async isGone(worker: string): Promise<boolean> {
    const refusedAt = this.refused.get(worker);
    if (refusedAt !== undefined && Date.now() - refusedAt < REFUSED_MS) return true;
    await this.refresh(true);
    return Date.now() - this.refreshedAt < 1_000 && !this.workers.has(worker);
  }
}

export interface ForwardedReply {
  status: number;
  body: string;
  contentType: string;
  retryAfter?: string;
  worker?: string;
  /** The holder sent a reply recorded for the request's Idempotency-Key again (REPLAYED_HEADER). */
  replayed?: true;
}

/** Sending failed before the owner could have received the request (it is down): the caller may activate. */
export class OwnerUnreachable extends Error {
  /** The connection was refused: nothing listens at the owner's endpoint (not a routing failure). */
  readonly refused: boolean;
  constructor(message: string, refused: boolean) {
    super(message);
    this.refused = refused;
  }
}

/** Idle forwarding connections are not reused after this long: a worker closes idle ones after 5 s
 *  (server.ts keepAliveTimeout), so a request is never sent on a connection being closed. */
const IDLE_MS = 4_000;
/** Connection pools kept, one per peer endpoint; the least recently used goes first. */
const MAX_PEERS = 256;

/** The host and port of a registered endpoint (`host:port`, `[v6]:port`, or a URL). */
function targetOf(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) };
}

/**
 * Sends requests on to peers over the project's own HTTP/1.1 client (contract/http1.ts: one write per
 * request, no per-request agent bookkeeping; node:http's client cost about 0.1 to 0.2 ms more CPU per
 * call, docs/activation.md has the figures), kept-alive connections per peer.
 */
export class Forwarder {
  private readonly pools = new Map<string, Http1Pool>();
  private readonly self: string;
  private readonly timeoutMs: number;

  constructor(self: string, timeoutMs = 60_000) {
    this.self = self;
    this.timeoutMs = timeoutMs;
  }

  private poolOf(endpoint: string): Http1Pool {
    let pool = this.pools.get(endpoint);
    if (pool) {
      // Most recently used last: the first one is the one to close when too many are kept.
      this.pools.delete(endpoint);
      this.pools.set(endpoint, pool);
      return pool;
    }
    pool = new Http1Pool(targetOf(endpoint), { idleMs: IDLE_MS, maxIdle: 64 });
    this.pools.set(endpoint, pool);
    if (this.pools.size > MAX_PEERS) {
      const [oldest, old] = this.pools.entries().next().value!;
      this.pools.delete(oldest);
      old.close();
    }
    return pool;
  }

  send(
    endpoint: string,
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body: string | undefined,
    headers: Record<string, string>,
    timeoutMs = this.timeoutMs,
  ): Promise<ForwardedReply> {
    return new Promise<ForwardedReply>((resolve, reject) => {
      let exchange: ReturnType<Http1Pool['request']>;
      try {
        exchange = this.poolOf(endpoint).request({
          method,
          path,
          headers: { ...headers, [FORWARDED_HEADER]: this.self, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body } : {}),
          maxResponseBytes: MAX_REPLY_BYTES,
        });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(connectDeadline);
        fn();
      };
      const deadline = setTimeout(() => settle(() => (exchange.abort(), reject(new Error('forwarding timed out')))), timeoutMs);
      // A new connection that does not open within CONNECT_TIMEOUT_MS reached nobody (a vanished pod
      // IP drops packets rather than refusing): the caller may route the request elsewhere.
      const connectDeadline = exchange.connecting
        ? setTimeout(() => {
            const why = `no connection to ${endpoint} within ${CONNECT_TIMEOUT_MS} ms`;
            settle(() => (exchange.abort(), reject(new OwnerUnreachable(why, false))));
          }, CONNECT_TIMEOUT_MS)
        : undefined;
      exchange.answer.then(
        (answer) => {
          const h = answer.headers;
          settle(() =>
            resolve({
              status: answer.status,
              body: answer.body.toString('utf8'),
              contentType: h['content-type'] ?? 'application/json; charset=utf-8',
              ...(h['retry-after'] ? { retryAfter: h['retry-after'] } : {}),
              ...(h['x-spo-worker'] ? { worker: h['x-spo-worker'] } : {}),
              ...(h[REPLAYED_HEADER] === 'true' ? { replayed: true as const } : {}),
            }),
          );
        },
        (error: unknown) =>
          settle(() => {
            // Refused, unreachable or unresolvable: the connection never opened, nothing reached the owner.
            if (error instanceof Http1Failure && error.kind === 'refused')
              reject(new OwnerUnreachable(error.message, error.code === 'ECONNREFUSED'));
            else reject(error instanceof Error ? error : new Error(String(error)));
          }),
      );
    });
  }

  close(): void {
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }
}
