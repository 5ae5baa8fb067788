// Traffic whose every request can be told apart in the counting handler's file
// (e2e/handlers/counting_handler.py): each is a `put` of a key unique to it, so after the run a test
// knows, per request, whether the handler ran it (the file) and whether its write applied (the key in
// the session's data). Two kinds of lanes, each on its own sessions, every lane spreading its requests
// over every live worker:
// - keyed: the TypeScript client (operator/worker/client.ts), one Idempotency-Key per call, resent
//   on refusals and unknown outcomes until answered (bounded);
// - plain: one attempt per request, no key, no resend; its outcome is classified from the answer.
import { WorkerClient } from '../../../operator/worker/client.ts';
import { RETRY_ELSEWHERE_CODES } from '../../../operator/worker/errors.ts';
import { poolEndpoints, type MigrationEnv, type TestPool } from './migration-env.ts';
import { followEndpoints } from './traffic.ts';

/**
 * acked: answered 200. refused: answered a code meaning "nothing was applied, retry". notSent: the
 * connection was refused (the request never reached a worker). unknown: anything else (a broken
 * connection, a timeout, a forward that got no answer, a handler failure, a keyed call out of retries).
 */
export type Outcome = 'acked' | 'refused' | 'notSent' | 'unknown';

export interface CountedRequest {
  session: string;
  /** The `put` key, unique to this request. */
  key: string;
  keyed: boolean;
  outcome: Outcome;
  /** The error code of an outcome other than acked. */
  code?: string;
}

const NOT_SENT = new Set(['ECONNREFUSED']);

/** The Idempotency-Key of a keyed request (its `put` key is unique per session). */
export const idempotencyKeyOf = (session: string, key: string): string => `${session}-${key}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function errorCode(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 4; depth++, e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return error instanceof Error ? error.name : 'ERROR';
}

export class CountedTraffic {
  readonly requests: CountedRequest[] = [];
  /** Each keyed request's attempts, by Idempotency-Key: "<ms since start> <endpoint> <status or error> [<code>] [-> <forwarded to>]". */
  readonly attempts = new Map<string, string[]>();
  private readonly started = Date.now();
  private running = false;
  private loops: Promise<void>[] = [];
  private refresher: NodeJS.Timeout | undefined;
  private client: WorkerClient | undefined;
  private endpoints: string[] = [];
  private turn = 0;
  private readonly env: MigrationEnv;
  private readonly pool: TestPool;
  private readonly options: { lanes: number; perLaneMax: number; pauseMs: number };

  constructor(env: MigrationEnv, pool: TestPool, options: { lanes: number; perLaneMax: number; pauseMs: number }) {
    this.env = env;
    this.pool = pool;
    this.options = options;
  }

  /** A client on the pool's live workers, following them while it runs. */
  async connect(): Promise<WorkerClient> {
    this.endpoints = await poolEndpoints(this.env, this.pool);
    this.client = new WorkerClient({
      endpoints: this.endpoints,
      maxAttempts: 60,
      baseDelayMs: 20,
      maxDelayMs: 500,
      budgetMs: 60_000,
      fetch: (input, init) => this.traced(input, init),
    });
    this.refresher = followEndpoints(this.env, this.pool, {
      setEndpoints: (list) => {
        this.client?.setEndpoints(list);
        this.endpoints = list;
      },
    });
    return this.client;
  }

  /** Starts `lanes` concurrent lanes on each session. */
  start(keyedSessions: string[], plainSessions: string[]): void {
    this.running = true;
    for (let lane = 0; lane < this.options.lanes; lane++) {
      for (const id of keyedSessions) this.loops.push(this.loop(id, lane, true));
      for (const id of plainSessions) this.loops.push(this.loop(id, lane, false));
    }
  }

  private async loop(session: string, lane: number, keyed: boolean): Promise<void> {
    for (let i = 0; this.running && i < this.options.perLaneMax; i++) {
      const key = `l${lane}-${i}`;
      const request: CountedRequest = { session, key, keyed, outcome: 'unknown' };
      this.requests.push(request);
      Object.assign(request, keyed ? await this.keyedPut(session, key) : await this.plainPut(session, key));
      await sleep(this.options.pauseMs);
    }
  }

  /** fetch, noting each attempt of a keyed request (for a failure's story). */
  private async traced(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const key = new Headers(init?.headers).get('idempotency-key');
    const note = (what: string) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (key) this.attempts.set(key, [...(this.attempts.get(key) ?? []), `${Date.now() - this.started} ${url} ${what}`]);
    };
    try {
      const response = await fetch(input, init);
      const body = response.status === 200 ? '' : ` ${(await response.clone().text()).slice(0, 160)}`;
      note(`${response.status}${body} -> ${response.headers.get('x-spo-forwarded-to') ?? 'here'}`);
      return response;
    } catch (error) {
      note(`error ${errorCode(error)}`);
      throw error;
    }
  }

  /** One keyed put through the client (its retries included). */
  async keyedPut(session: string, key: string): Promise<Pick<CountedRequest, 'outcome' | 'code'>> {
    try {
      await this.client!.execute(session, 'put', { key, value: 1 }, { idempotencyKey: idempotencyKeyOf(session, key) });
      return { outcome: 'acked' };
    } catch (error) {
      return { outcome: 'unknown', code: errorCode(error) };
    }
  }

  /** One attempt, no Idempotency-Key, to the next live worker in turn. */
  private async plainPut(session: string, key: string): Promise<Pick<CountedRequest, 'outcome' | 'code'>> {
    const endpoint = this.endpoints[this.turn++ % this.endpoints.length];
    try {
      const response = await fetch(`http://${endpoint}/v1/sessions/${session}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ handler: 'put', args: { key, value: 1 } }),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      if (response.status === 200) return { outcome: 'acked' };
      const error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      const code = error?.code ?? `HTTP_${response.status}`;
      // A forward that got no answer is answered SESSION_MOVING but its outcome is unknown (docs/activation.md).
      const unanswered = code === 'SESSION_MOVING' && /forwarding .* failed/.test(error?.message ?? '');
      return { outcome: RETRY_ELSEWHERE_CODES.has(code) && !unanswered ? 'refused' : 'unknown', code };
    } catch (error) {
      const code = errorCode(error);
      return { outcome: NOT_SENT.has(code) ? 'notSent' : 'unknown', code };
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    clearInterval(this.refresher);
  }

  /** Outcome counts of the requests started in [from, to), by lane kind (after stop: all answered). */
  tally(from = 0, to = this.requests.length): Record<'keyed' | 'plain', Record<Outcome, number>> {
    const zero = (): Record<Outcome, number> => ({ acked: 0, refused: 0, notSent: 0, unknown: 0 });
    const counts = { keyed: zero(), plain: zero() };
    for (const r of this.requests.slice(from, to)) counts[r.keyed ? 'keyed' : 'plain'][r.outcome] += 1;
    return counts;
  }
}
