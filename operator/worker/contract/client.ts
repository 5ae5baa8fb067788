// The runtime's HTTP client of the handler container: keep-alive connections to
// 127.0.0.1:SPO_HANDLER_PORT, a deadline per call, size limits both ways, and every way a call
// can break turned into the contract's typed errors (protocol.ts says what answers mean). The
// HTTP/1.1 exchange itself is http1.ts.
import { Http1Failure, Http1Pool } from './http1.ts';
import {
  CONTRACT_VERSION,
  INVOKE_PATH,
  READY_PATH,
  RESPONSE_ENVELOPE_BYTES,
  failure,
  interpretInvoke,
  interpretReady,
  type HandlerCallError,
  type InvokeRequest,
  type InvokeSuccess,
  type Readiness,
} from './protocol.ts';

export interface HandlerClientOptions {
  port: number;
  host?: string;
  /** The deadline of one invoke (the pool's spec.handler.timeoutSeconds). */
  timeoutMs: number;
  maxSessionBytes: number;
  /** Deadline of one readiness probe. */
  readyTimeoutMs?: number;
}

interface RawAnswer {
  status: number;
  body: string;
}

type Outcome = { answer: RawAnswer } | { error: HandlerCallError };

export class HandlerClient {
  private readonly o: Required<HandlerClientOptions>;
  // Keep-alive, and idle connections not reused after 4 s (a handler keeps idle connections at
  // least 5 s, so the runtime never sends on a connection the handler is closing).
  private readonly pool: Http1Pool;

  constructor(options: HandlerClientOptions) {
    this.o = { host: '127.0.0.1', readyTimeoutMs: 2_000, ...options };
    this.pool = new Http1Pool({ host: this.o.host, port: this.o.port }, { idleMs: 4_000, maxIdle: 32 });
  }

  get port(): number {
    return this.o.port;
  }

  /** GET /contract/v1/ready; never throws (no answer = not ready). */
  async ready(): Promise<Readiness> {
    const outcome = await this.call('GET', READY_PATH, undefined, this.o.readyTimeoutMs, 64 * 1024);
    if ('error' in outcome) return { ready: false, reason: outcome.error.message, handlers: [] };
    return interpretReady(outcome.answer.status, outcome.answer.body);
  }

  /** POST /contract/v1/invoke: the handler's success, or a HandlerCallError (never anything else). */
  async invoke(request: Omit<InvokeRequest, 'contract' | 'deadlineMs'>): Promise<InvokeSuccess> {
    const body: InvokeRequest = { contract: CONTRACT_VERSION, ...request, deadlineMs: this.o.timeoutMs };
    const outcome = await this.call('POST', INVOKE_PATH, body, this.o.timeoutMs, this.o.maxSessionBytes + RESPONSE_ENVELOPE_BYTES, {
      'x-spo-request-id': request.requestId,
      'x-spo-deadline-ms': String(this.o.timeoutMs),
    });
    if ('error' in outcome) throw outcome.error;
    const meaning = interpretInvoke(outcome.answer.status, outcome.answer.body, {
      handler: request.handler,
      maxSessionBytes: this.o.maxSessionBytes,
    });
    if (meaning instanceof Error) throw meaning;
    return meaning;
  }

  close(): void {
    this.pool.close();
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    body: InvokeRequest | undefined,
    timeoutMs: number,
    maxResponseBytes: number,
    headers: Record<string, string> = {},
  ): Promise<Outcome> {
    const what = body ? `handler '${body.handler}'` : 'the handler';
    const exchange = this.pool.request({
      method,
      path,
      headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body ? { body: JSON.stringify(body) } : {}),
      maxResponseBytes,
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        exchange.abort();
        resolve({ error: failure('timeout', `${what} did not answer within ${timeoutMs} ms`) });
      }, timeoutMs);
    });
    const answered = exchange.answer.then(
      (answer): Outcome => ({ answer: { status: answer.status, body: answer.body.toString('utf8') } }),
      (error: unknown): Outcome => ({ error: this.failureOf(error, what) }),
    );
    try {
      return await Promise.race([answered, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private failureOf(error: unknown, what: string): HandlerCallError {
    if (!(error instanceof Http1Failure)) return failure('failed', `${what} failed: ${String(error)}`, { cause: error });
    switch (error.kind) {
      case 'refused':
        return failure('unavailable', `the handler is not reachable on port ${this.o.port} (${error.code}); retry shortly`, {
          cause: error,
        });
      case 'too_large':
      case 'malformed':
        return failure('bad_response', `${what} ${error.message}`, { cause: error });
      case 'broken':
        return failure('failed', `${what} failed: ${error.message}`, { cause: error });
    }
  }
}
