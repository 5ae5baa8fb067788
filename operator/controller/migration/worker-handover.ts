// The runner's side of the handover contract (docs/worker.md, POST /admin/handover): asks a
// source worker to hand its live activations over, with the pool's admin token (the Secret the
// pool controller made, admin-token.ts; read here, never created, never logged). A source that
// cannot answer (no live pod, no registered endpoint, no usable token, connection refused, a
// timeout, 404 from a worker older than the endpoint, any other non-200 or a malformed answer)
// yields null: the executor then moves those sessions at store level (fenced compare-and-swap).
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import type { SessionMigration, SessionPool } from '../../api/index.ts';
import { errorMessage } from '../../kube/errors.ts';
import type { HandoverCall, HandoverOutcome, HandoverOutcomeKind } from '../../migration/handover.ts';
import type { Logger } from '../../observability/logger.ts';
import { readAdminTokenSecret } from '../pool/admin-token.ts';
import { adminTokenSecretName } from '../pool/names.ts';
import type { PoolStore } from './store-access.ts';

const OUTCOMES: readonly HandoverOutcomeKind[] = ['moved', 'idle', 'busy', 'failed'];

/** The per-session results of a 200 answer, or null when the body is not what the contract says. */
export function parseHandoverAnswer(body: unknown): HandoverOutcome[] | null {
  const results = (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) return null;
  const out: HandoverOutcome[] = [];
  for (const r of results as unknown[]) {
    const item = r as { sessionId?: unknown; outcome?: unknown; epoch?: unknown; message?: unknown } | null;
    if (typeof item?.sessionId !== 'string' || !OUTCOMES.includes(item.outcome as HandoverOutcomeKind)) return null;
    out.push({
      sessionId: item.sessionId,
      outcome: item.outcome as HandoverOutcomeKind,
      ...(typeof item.epoch === 'number' ? { epoch: item.epoch } : {}),
      ...(typeof item.message === 'string' ? { message: item.message.slice(0, 200) } : {}),
    });
  }
  return out;
}

/** A pod that can still answer: present, not terminating, running. */
export function podCanAnswer(pod: V1Pod | undefined): boolean {
  return pod !== undefined && !pod.metadata?.deletionTimestamp && pod.status?.phase === 'Running';
}

export type HttpPost = (url: string, token: string, body: string, timeoutMs: number) => Promise<{ status: number; body: unknown }>;

export const httpPost: HttpPost = async (url, token, body, timeoutMs) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: response.status, body: text };
  }
};

export interface WorkerHandoverOptions {
  readSecret(namespace: string, name: string): Promise<V1Secret>;
  pods: { get(name: string, namespace?: string): V1Pod | undefined };
  logger: Logger;
  post?: HttpPost;
  /** Extra time on top of the request's deadlineMs before the call is given up. Default 5 s. */
  slackMs?: number;
}

/** Builds, per pool and migration, the HandoverCall the executor uses. */
export function workerHandover(options: WorkerHandoverOptions): (pool: SessionPool, store: PoolStore, m: SessionMigration) => HandoverCall {
  const post = options.post ?? httpPost;
  // The token per pool uid, read at most once a minute (a new Secret rolls the workers anyway).
  const tokens = new Map<string, { at: number; token: Promise<string | null> }>();
  return (pool, ps, m) => {
    const namespace = pool.metadata.namespace ?? 'default';
    const tokenOnce = (): Promise<string | null> => {
      const known = tokens.get(pool.metadata.uid ?? '');
      if (known && Date.now() - known.at < 60_000) return known.token;
      const token = options.readSecret(namespace, adminTokenSecretName(pool.metadata.name ?? '')).then(
        (secret) => {
          const read = readAdminTokenSecret(pool, secret);
          if (!read.ok) options.logger.warn({ pool: ps.pool, problem: read.problem }, 'no admin token: sessions move at store level');
          return read.ok ? read.token : null;
        },
        (error: unknown) => {
          options.logger.warn({ pool: ps.pool, err: errorMessage(error) }, 'admin token not readable: sessions move at store level');
          return null;
        },
      );
      tokens.set(pool.metadata.uid ?? '', { at: Date.now(), token });
      return token;
    };
    return async ({ migration, source, deadlineMs, moves }) => {
      if (!podCanAnswer(options.pods.get(source, namespace))) return null;
      const registration = (await ps.store.listWorkers(ps.pool)).find((w) => w.worker === source);
      if (!registration?.endpoint) return null;
      const bearer = await tokenOnce();
      if (bearer === null) return null;
      const body = JSON.stringify({ migration: `${namespace}/${m.metadata.name}/${migration}`, deadlineMs, moves });
      try {
        const answer = await post(`http://${registration.endpoint}/admin/handover`, bearer, body, deadlineMs + (options.slackMs ?? 5_000));
        if (answer.status !== 200) {
          options.logger.debug({ source, status: answer.status }, 'handover refused: sessions move at store level');
          return null;
        }
        return parseHandoverAnswer(answer.body);
      } catch (error) {
        options.logger.debug({ source, err: errorMessage(error) }, 'handover unanswered: sessions move at store level');
        return null;
      }
    };
  };
}
