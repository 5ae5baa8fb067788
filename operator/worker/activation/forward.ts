// Forwarding a session request to the worker that holds its activation: one hop, over kept-alive
// connections, marked with `x-spo-forwarded: <this worker>` so the receiver never forwards it again.
// The pool's workers and their endpoints come from the worker registry (store/workers.ts), read at
// each heartbeat and on a miss (at most once a second).
import http from 'node:http';
import type { SessionStore, WorkerRegistration } from '../../store/types.ts';

export const FORWARDED_HEADER = 'x-spo-forwarded';
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** How long a new forwarding connection may take to open. */
const CONNECT_TIMEOUT_MS = 2_000;
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

export class Forwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 1_000 });
  private readonly self: string;
  private readonly timeoutMs: number;

  constructor(self: string, timeoutMs = 60_000) {
    this.self = self;
    this.timeoutMs = timeoutMs;
  }

  send(
    endpoint: string,
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string>,
    timeoutMs = this.timeoutMs,
  ): Promise<ForwardedReply> {
    const url = new URL(path, endpoint.includes('://') ? endpoint : `http://${endpoint}`);
    return new Promise<ForwardedReply>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          agent: this.agent,
          timeout: timeoutMs,
          headers: {
            ...headers,
            [FORWARDED_HEADER]: this.self,
            ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const header = (name: string) => {
              const v = res.headers[name];
              return typeof v === 'string' ? v : undefined;
            };
            const retryAfter = header('retry-after');
            const worker = header('x-spo-worker');
            resolve({
              status: res.statusCode ?? 502,
              body: Buffer.concat(chunks).toString('utf8'),
              contentType: header('content-type') ?? 'application/json; charset=utf-8',
              ...(retryAfter ? { retryAfter } : {}),
              ...(worker ? { worker } : {}),
            });
          });
        },
      );
      // A new connection that does not open within CONNECT_TIMEOUT_MS reached nobody (a vanished pod
      // IP drops packets rather than refusing): the caller may route the request elsewhere.
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => req.destroy(new OwnerUnreachable(`no connection to ${url.host} within ${CONNECT_TIMEOUT_MS} ms`, false)),
          CONNECT_TIMEOUT_MS,
        );
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('timeout', () => req.destroy(new Error('forwarding timed out')));
      req.on('error', (error: NodeJS.ErrnoException) => {
        // Refused or unresolvable: nothing reached the owner.
        if (error instanceof OwnerUnreachable) reject(error);
        else if (error.code === 'ECONNREFUSED' || error.code === 'ENOTFOUND' || error.code === 'EHOSTUNREACH')
          reject(new OwnerUnreachable(error.message, error.code === 'ECONNREFUSED'));
        else reject(error);
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
