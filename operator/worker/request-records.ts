// Idempotency-Keys of requests that belong to no session yet: a create and an anonymous execute
// (docs/activation.md "Idempotency-Key"). Their records live in the store by pool
// (store/request-records.ts), since any worker may receive the request or its retry: the key is
// claimed before the request runs, the 2xx reply recorded after it, and the claim dropped when it
// failed. A retry meanwhile is told the request is in progress (409, retryable); a retry after it gets
// the recorded reply and nothing runs; the key sent with another request is refused (422).
import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import { requestFingerprint } from '../store/request-records.ts';
import type { JsonValue, RequestRecordRef, RequestScope, SessionStore } from '../store/types.ts';
import { REPLAYED_HEADER } from './activation/forward.ts';
import { WorkerError, toWorkerError } from './errors.ts';

export interface RecordableReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RequestRecordsOptions {
  store: SessionStore;
  pool: string;
  worker: string;
  logger: Logger;
  /** How long a claim holds when its worker never completes it (it died): at least the longest run. */
  pendingMs(scope: RequestScope): number;
}

/** A per-process prefix and a counter: claimants are unique without a random draw per request. */
const CLAIM_PREFIX = randomBytes(6).toString('hex');
let claims = 0;

export class RequestRecords {
  private readonly o: RequestRecordsOptions;

  constructor(options: RequestRecordsOptions) {
    this.o = options;
  }

  /** Runs a keyed request once per key: answers a retry from the record, or runs it and records a 2xx reply. */
  async run<R extends RecordableReply>(
    scope: RequestScope,
    request: { key: string; route: string; body: string },
    execute: () => Promise<R>,
  ): Promise<R | RecordableReply> {
    const { store } = this.o;
    if (!store.claimRequest || !store.completeRequest || !store.abandonRequest) return execute();
    const ref: RequestRecordRef = {
      pool: this.o.pool,
      scope,
      key: request.key,
      fingerprint: requestFingerprint(request.route, request.body),
      claimant: `${this.o.worker}.${CLAIM_PREFIX}.${(claims++).toString(36)}`,
    };
    let claim;
    try {
      claim = await store.claimRequest(ref, this.o.pendingMs(scope));
    } catch (error) {
      throw toWorkerError(error);
    }
    if (claim.state === 'recorded') return { status: claim.reply.status, body: claim.reply.body, headers: { [REPLAYED_HEADER]: 'true' } };
    if (claim.state === 'pending')
      throw new WorkerError('IDEMPOTENCY_KEY_IN_USE', 'a request with this Idempotency-Key is still running; retry shortly');
    if (claim.state === 'mismatch')
      throw new WorkerError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was sent before with another request; use a new key');
    let reply: R;
    try {
      reply = await execute();
    } catch (error) {
      await this.abandon(ref);
      throw error;
    }
    if (reply.status < 200 || reply.status > 299) {
      await this.abandon(ref);
      return reply;
    }
    try {
      const recorded = await store.completeRequest(ref, { status: reply.status, body: (reply.body ?? null) as JsonValue });
      if (!recorded)
        this.o.logger.warn({ scope, claimant: ref.claimant }, 'keyed request ran after its claim lapsed: its reply is not recorded');
    } catch (error) {
      // The request succeeded and its client gets the reply; the claim lapses after pendingMs and a later retry runs again.
      this.o.logger.warn({ err: error, scope }, 'could not record the reply of a keyed request');
    }
    return reply;
  }

  private async abandon(ref: RequestRecordRef): Promise<void> {
    try {
      await this.o.store.abandonRequest?.(ref);
    } catch (error) {
      // Left to lapse after pendingMs: a retry until then is told the request is in progress.
      this.o.logger.warn({ err: error, scope: ref.scope }, 'could not drop the claim of a failed keyed request');
    }
  }
}
