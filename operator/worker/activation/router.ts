// A session request's way to its activation (docs/activation.md): run here in the session's queue,
// or forward it in one hop to the worker holding the activation. An Idempotency-Key already
// recorded is answered from the record, without running anything.
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../observability/logger.ts';
import type { SessionRecord, SessionStore } from '../../store/types.ts';
import { WorkerError, errorCode, sessionMoving } from '../errors.ts';
import type { Activation } from './activation.ts';
import {
  FORWARDED_HEADER,
  IDEMPOTENCY_HEADER,
  REPLAYED_HEADER,
  OwnerUnreachable,
  type ForwardedReply,
  type Forwarder,
  type WorkerDirectory,
} from './forward.ts';
import type { RecordedKeys } from '../sessions/types.ts';
import type { ActivationRegistry } from './registry.ts';

/** A reply as the server sends it (server.ts Reply). */
export interface RoutedReply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface SessionRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** The request's path, to send on when forwarding. */
  path: string;
  /** The JSON body to send on when forwarding. */
  body?: string;
  /** The worker that forwarded this request, when one did. */
  forwardedBy?: string;
  idempotencyKey?: string;
}

/** Runs a request in the activation: its fence, and its slot for the session as last read or written
 *  (with the warm record a request may run on without reading the store first). */
export type RunInActivation = (
  fence: { owner: string; epoch: number },
  remember: { record: SessionRecord | undefined; warm(): SessionRecord | undefined; keys: RecordedKeys },
) => Promise<RoutedReply>;

export interface RouterOptions {
  store: SessionStore;
  /** The pool identity (`<namespace>/<name>`): every by-id store call names it. */
  pool: string;
  worker: string;
  registry: ActivationRegistry;
  directory: WorkerDirectory;
  forwarder: Forwarder;
  logger: Logger;
  /** Finds a session the store lacks in a peer's memory (a WorkerLocal worker during a mode switch). */
  memory?: { elsewhere(id: string, request: SessionRequest, notFound: unknown): Promise<RoutedReply> };
}

/** The session request as the activation router needs it: to forward it, and its Idempotency-Key.
 *  `body` is the JSON text as received (already validated): forwarded as it is, not serialized again. */
export function sessionRequest(req: IncomingMessage, path: string, body?: string): SessionRequest {
  const header = (name: string) => {
    const v = req.headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const idempotencyKey = header(IDEMPOTENCY_HEADER);
  if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,128}$/.test(idempotencyKey))
    throw new WorkerError('INVALID_REQUEST', 'Idempotency-Key must be 1 to 128 printable ASCII characters without spaces');
  const forwardedBy = header(FORWARDED_HEADER);
  return {
    method: req.method === 'GET' || req.method === 'DELETE' ? req.method : 'POST',
    path,
    ...(body !== undefined ? { body } : {}),
    ...(forwardedBy ? { forwardedBy } : {}),
    ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
  };
}

/** Forwarding hints kept per worker (session id -> owner), the oldest dropped first. */
const MAX_HINTS = 10_000;

export class ActivationRouter {
  private readonly o: RouterOptions;
  private readonly hints = new Map<string, { worker: string; endpoint: string }>();

  constructor(options: RouterOptions) {
    this.o = options;
  }

  async run(id: string, request: SessionRequest, run: RunInActivation): Promise<RoutedReply> {
    try {
      return await this.route(id, request, run);
    } catch (error) {
      // Not in the store: during a switch from or to WorkerLocal it may live in a peer's memory.
      if (errorCode(error) !== 'SESSION_NOT_FOUND' || !this.o.memory) throw error;
      return this.o.memory.elsewhere(id, request, error);
    }
  }

  private async route(id: string, request: SessionRequest, run: RunInActivation): Promise<RoutedReply> {
    let forwardedBy = request.forwardedBy;
    // Where this session's requests were last forwarded: sent there without reading the store. The
    // receiver checks (it runs the request only in its activation, else claims a free lease or refuses);
    // a refusal (409, 503: nothing ran) drops the hint and the request is routed from the store.
    let hint = forwardedBy === undefined && !this.o.registry.get(id) ? this.hints.get(id) : undefined;
    // A hint to a worker that left the listing (drained, evicted, gone) is not followed: its pod IP may
    // be gone too, and the store names the session's owner now.
    if (hint && !this.o.directory.listed(hint.worker)) {
      this.hints.delete(id);
      hint = undefined;
    }
    if (hint) {
      const reply = await this.forward(hint.endpoint, hint.worker, request).catch((error: unknown) => {
        if (error instanceof OwnerUnreachable) return undefined;
        throw error;
      });
      if (reply && reply.status !== 409 && reply.status !== 503) return reply;
      this.hints.delete(id);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const route = await this.o.registry.route(id, forwardedBy);
      if (route.kind === 'local') {
        this.hints.delete(id);
        return this.runIn(route.activation, request, run);
      }
      try {
        const reply = await this.forward(route.endpoint, route.worker, request);
        this.hint(id, route.worker, route.endpoint);
        return reply;
      } catch (error) {
        if (!(error instanceof OwnerUnreachable)) throw error;
        // The owner is down and never got the request: route again without forwarding; its lease is
        // taken over here (fenced compare-and-swap) instead of waiting for its registration to lapse.
        if (error.refused) this.o.directory.markRefused(route.worker);
        this.o.logger.debug({ sessionId: id, owner: route.worker }, 'owner unreachable: routing here');
        forwardedBy = this.o.worker;
      }
    }
    throw sessionMoving(id, 'has an unreachable owner');
  }

  /** The session as this worker's live activation last read or wrote it, while its lease holds (degraded reads). */
  lastKnown(id: string): SessionRecord | undefined {
    return this.o.registry.get(id)?.lastKnown();
  }

  private hint(id: string, worker: string, endpoint: string): void {
    this.hints.delete(id);
    this.hints.set(id, { worker, endpoint });
    // Bounded: the oldest hint goes first (a Map iterates in insertion order).
    if (this.hints.size > MAX_HINTS) this.hints.delete(this.hints.keys().next().value!);
  }

  private runIn(activation: Activation, request: SessionRequest, run: RunInActivation): Promise<RoutedReply> {
    const id = activation.id;
    return activation.enqueue(async (ended) => {
      if (ended) {
        // Handed over while this request waited: send it on to the new owner (one hop only).
        if (ended.target && !request.forwardedBy) {
          const endpoint = await this.o.directory.endpointOf(ended.target);
          if (endpoint) return this.forward(endpoint, ended.target, request);
        }
        throw sessionMoving(id, 'moved to another worker');
      }
      // An Idempotency-Key is looked up by the backend, in the same round trip as its read (store-backend.ts).
      try {
        return await run({ owner: this.o.worker, epoch: activation.epoch }, activation);
      } catch (error) {
        const code = errorCode(error);
        // The fence was lost (moved at store level, or lapsed): this worker no longer holds the session.
        if (code === 'FENCED' || code === 'SESSION_NOT_FOUND') this.o.registry.drop(id);
        // The worker switched to WorkerLocal while the request waited, and the session is not in its memory.
        if (code === 'SESSION_NOT_ON_WORKER') throw sessionMoving(id, 'changed session mode while this request waited');
        throw error;
      }
    });
  }

  private forward(endpoint: string, worker: string, request: SessionRequest): Promise<RoutedReply> {
    return forwardRequest(this.o.forwarder, endpoint, worker, request);
  }
}

/** Sends a request on to the worker that runs its session (one hop); OwnerUnreachable when it never got there. */
export async function forwardRequest(
  forwarder: Forwarder,
  endpoint: string,
  worker: string,
  request: SessionRequest,
): Promise<RoutedReply> {
  let reply: ForwardedReply;
  try {
    reply = await forwarder.send(endpoint, request.method, request.path, request.body, {
      ...(request.idempotencyKey !== undefined ? { [IDEMPOTENCY_HEADER]: request.idempotencyKey } : {}),
    });
  } catch (error) {
    if (error instanceof OwnerUnreachable) throw error;
    // Sent, but no answer: the outcome is unknown (a retry with the same Idempotency-Key is safe).
    throw new WorkerError('SESSION_MOVING', `forwarding to worker ${worker} failed; retry`, { cause: error, retryAfterSeconds: 1 });
  }
  return {
    status: reply.status,
    text: reply.body,
    contentType: reply.contentType,
    headers: {
      'x-spo-forwarded-to': reply.worker ?? worker,
      ...(reply.retryAfter ? { 'retry-after': reply.retryAfter } : {}),
      ...(reply.replayed ? { [REPLAYED_HEADER]: 'true' } : {}),
    },
  };
}
