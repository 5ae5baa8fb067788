// The operator's calls to its workers' /admin/* routes, with the pool's admin token
// (admin-token.ts): a live session-mode switch. When spec.sessionMode changes, every live
// worker of the pool is switched in place (POST /admin/mode) before the Deployment rolls out
// the new SPO_SESSION_MODE, so the whole pool changes mode at once instead of pod by pod.
// Each worker gets the call once per mode (a switch to the mode it already runs is a no-op on
// the worker), so a worker started after the change is only confirmed.
// Whom the operator calls: the workers registered in the pool's store registry whose name is a
// live pod of the pool (pod cache), at the endpoint they registered, and not draining.
import type { SessionPool } from '../../api/index.ts';
import type { WorkerRegistration } from '../../store/types.ts';
import type { SessionMode } from '../../worker/backends.ts';

export interface AdminTarget {
  worker: string;
  endpoint: string;
}

/** Live, registered, not-draining workers that have not yet confirmed the mode. Sorted by name. */
export function modeSwitchTargets(
  registrations: readonly WorkerRegistration[],
  livePods: ReadonlySet<string>,
  confirmed: ReadonlySet<string>,
): AdminTarget[] {
  return registrations
    .filter((r) => livePods.has(r.worker) && !r.draining && !confirmed.has(r.worker) && r.endpoint !== '')
    .map((r) => ({ worker: r.worker, endpoint: r.endpoint }))
    .sort((a, b) => a.worker.localeCompare(b.worker));
}

export interface AdminAnswer {
  status: number;
  body: unknown;
}

/** One admin call: POST /admin/mode {mode} with the bearer token. */
export type AdminCall = (endpoint: string, token: string, mode: SessionMode, timeoutMs: number) => Promise<AdminAnswer>;

export const httpAdminCall: AdminCall = async (endpoint, token, mode, timeoutMs) => {
  const response = await fetch(`http://${endpoint}/admin/mode`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ mode }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
};

/** What a worker's answer says, for an Event: code and message of an error, or the switch steps. */
export function describeAnswer(answer: AdminAnswer): string {
  const body = answer.body as { error?: { code?: unknown; message?: unknown }; report?: { from?: unknown; steps?: unknown } } | null;
  if (answer.status === 200) {
    const steps = Array.isArray(body?.report?.steps) ? (body.report.steps as unknown[]).map(String) : [];
    return steps.length > 0 ? `${String(body?.report?.from)} -> ${steps.join(' -> ')}` : 'already in this mode';
  }
  const code = typeof body?.error?.code === 'string' ? body.error.code : 'no error code';
  const message = typeof body?.error?.message === 'string' ? `: ${body.error.message.slice(0, 200)}` : '';
  return `HTTP ${answer.status} ${code}${message}`;
}

export interface ModeSwitchOutcome {
  worker: string;
  ok: boolean;
  /** True when the worker changed mode (not only confirmed it). */
  switched: boolean;
  detail: string;
  /** The worker refused because it drains (it leaves the pool in its old mode): not a failure to report. */
  draining?: true;
}

/** The worker's answer is 503 WORKER_DRAINING. */
function drainingAnswer(answer: AdminAnswer): boolean {
  const body = answer.body as { error?: { code?: unknown } } | null;
  return answer.status === 503 && body?.error?.code === 'WORKER_DRAINING';
}

interface Memo {
  poolUid: string;
  mode: SessionMode;
  confirmed: Set<string>;
}

/** Per pool: which workers confirmed the pool's current mode (process memory; after a restart every worker is asked once again). */
export class ModeSwitches {
  private readonly call: AdminCall;
  private readonly timeoutMs: number;
  private readonly memo = new Map<string, Memo>();

  constructor(call: AdminCall = httpAdminCall, timeoutMs = 35_000) {
    this.call = call;
    this.timeoutMs = timeoutMs;
  }

  forget(key: string): void {
    this.memo.delete(key);
  }

  /** Switches (or confirms) every target worker to spec.sessionMode, in parallel. */
  async sync(
    key: string,
    pool: SessionPool,
    token: string,
    registrations: readonly WorkerRegistration[],
    livePods: ReadonlySet<string>,
  ): Promise<ModeSwitchOutcome[]> {
    const mode = pool.spec.sessionMode;
    let memo = this.memo.get(key);
    if (!memo || memo.mode !== mode || memo.poolUid !== pool.metadata.uid) {
      memo = { poolUid: pool.metadata.uid ?? '', mode, confirmed: new Set() };
      this.memo.set(key, memo);
    }
    // Workers gone from the pool need no memory.
    for (const worker of memo.confirmed) if (!livePods.has(worker)) memo.confirmed.delete(worker);
    const confirmed = memo.confirmed;
    const targets = modeSwitchTargets(registrations, livePods, confirmed);
    return Promise.all(
      targets.map(async ({ worker, endpoint }): Promise<ModeSwitchOutcome> => {
        try {
          const answer = await this.call(endpoint, token, mode, this.timeoutMs);
          const detail = describeAnswer(answer);
          // Not confirmed when draining: a worker whose evacuation is cancelled takes work again, and is asked again.
          if (drainingAnswer(answer)) return { worker, ok: false, switched: false, detail, draining: true };
          if (answer.status !== 200) return { worker, ok: false, switched: false, detail };
          confirmed.add(worker);
          return { worker, ok: true, switched: detail !== 'already in this mode', detail };
        } catch (err) {
          return { worker, ok: false, switched: false, detail: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
  }
}
