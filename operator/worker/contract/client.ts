// The runtime's HTTP client of the handler container: keep-alive connections to
// 127.0.0.1:SPO_HANDLER_PORT, a deadline per call, size limits both ways, and every way a call
// can break turned into the contract's typed errors (protocol.ts says what answers mean).
import http from 'node:http';
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

/** Connection errors that mean the request never reached a handler (nothing ran). */
const NOT_SENT = new Set(['ECONNREFUSED', 'EADDRNOTAVAIL', 'ENOTFOUND']);

interface RawAnswer {
  status: number;
  body: string;
}

type Outcome = { answer: RawAnswer } | { error: HandlerCallError };

export class HandlerClient {
  private readonly o: Required<HandlerClientOptions>;
  // Keep-alive, and idle sockets closed after 4 s (a handler keeps idle connections at least 5 s,
  // so the runtime never sends on a socket the handler is closing).
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32, timeout: 4_000 });

  constructor(options: HandlerClientOptions) {
    this.o = { host: '127.0.0.1', readyTimeoutMs: 2_000, ...options };
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
    this.agent.destroy();
  }

  private call(
    method: 'GET' | 'POST',
    path: string,
    body: InvokeRequest | undefined,
    timeoutMs: number,
    maxResponseBytes: number,
    headers: Record<string, string> = {},
  ): Promise<Outcome> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const what = body ? `handler '${body.handler}'` : 'the handler';
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let responded = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const req = http.request(
        {
          host: this.o.host,
          port: this.o.port,
          method,
          path,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          responded = true;
          const declared = Number(res.headers['content-length'] ?? NaN);
          if (declared > maxResponseBytes) {
            req.destroy();
            settle({ error: failure('bad_response', `${what} answered ${declared} bytes, over the limit of ${maxResponseBytes}`) });
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes) {
              req.destroy();
              settle({ error: failure('bad_response', `${what} answered more than ${maxResponseBytes} bytes`) });
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => settle({ answer: { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') } }));
          res.on('error', (error) =>
            settle({ error: failure('failed', `${what} broke the connection while answering`, { cause: error }) }),
          );
        },
      );
      const timer = setTimeout(() => {
        settle({ error: failure('timeout', `${what} did not answer within ${timeoutMs} ms`) });
        req.destroy();
      }, timeoutMs);
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (!responded && NOT_SENT.has(error.code ?? ''))
          settle({
            error: failure('unavailable', `the handler is not reachable on port ${this.o.port} (${error.code}); retry shortly`, {
              cause: error,
            }),
          });
        else
          settle({ error: failure('failed', `${what} failed: the connection broke (${error.code ?? error.message})`, { cause: error }) });
      });
      req.end(payload);
    });
  }
}
