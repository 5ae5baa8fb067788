// The admin step of a pool reconcile: make sure the pool's admin token Secret exists
// (admin-token.ts), then switch live workers to spec.sessionMode with it (worker-admin.ts).
// It reports what the reconciler needs: the Secret's uid (stamped on the pod template, so a
// recreated Secret rolls the workers onto the new token), or why there is no token (the
// reconciler then leaves the Deployment as it is), and whether to look again soon.
import type { SessionPool } from '../../api/index.ts';
import { errorMessage } from '../../kube/errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { WorkerRegistration } from '../../store/types.ts';
import { AdminTokens, AdminTokenError } from './admin-token.ts';
import type { PoolApi } from './client.ts';
import { adminTokenSecretName } from './names.ts';
import type { EventSink } from './reconciler.ts';
import { ModeSwitches, type AdminCall } from './worker-admin.ts';

export const ADMIN_REASONS = {
  AdminTokenCreated: 'AdminTokenCreated',
  AdminTokenUnavailable: 'AdminTokenUnavailable',
  SessionModeSwitched: 'SessionModeSwitched',
  SessionModeSwitchFailed: 'SessionModeSwitchFailed',
} as const;

/** A failed mode switch is tried again after this long. */
export const MODE_SWITCH_RETRY_MS = 10_000;

export interface AdminStepResult {
  /** uid of the admin token Secret; undefined when the token is unavailable. */
  secretUid?: string;
  /** Why the token is unavailable. */
  problem?: string;
  /** Look again after this long (a worker did not take the switch). */
  requeueAfterMs?: number;
}

export interface AdminStepDeps {
  api: Pick<PoolApi, 'readSecret' | 'createSecret'>;
  events: EventSink;
  logger: Logger;
  now: () => number;
  /** The call to a worker's POST /admin/mode (tests replace it); default HTTP. */
  adminCall?: AdminCall;
}

export class AdminStep {
  private readonly deps: AdminStepDeps;
  private readonly tokens: AdminTokens;
  private readonly modes: ModeSwitches;

  constructor(deps: AdminStepDeps) {
    this.deps = deps;
    this.tokens = new AdminTokens(deps.api, deps.now);
    this.modes = new ModeSwitches(deps.adminCall);
  }

  forget(key: string): void {
    this.tokens.forget(key);
    this.modes.forget(key);
  }

  /** `workers`: the pool's store registrations (undefined when the store is unreachable). */
  async run(
    key: string,
    pool: SessionPool,
    workers: readonly WorkerRegistration[] | undefined,
    livePods: ReadonlySet<string>,
  ): Promise<AdminStepResult> {
    let token: string;
    let secretUid: string;
    try {
      const got = await this.tokens.get(key, pool);
      ({ token, secretUid } = got);
      if (got.created)
        this.deps.events.record(
          pool,
          'Normal',
          ADMIN_REASONS.AdminTokenCreated,
          `created Secret ${adminTokenSecretName(pool.metadata.name ?? '')} with the workers' admin token`,
        );
    } catch (err) {
      const cause = err instanceof AdminTokenError && err.cause !== undefined ? `: ${errorMessage(err.cause)}` : '';
      const problem = `the workers' admin token is unavailable: ${errorMessage(err)}${cause}`;
      this.deps.events.record(pool, 'Warning', ADMIN_REASONS.AdminTokenUnavailable, problem);
      return { problem };
    }
    if (!workers) return { secretUid };
    const outcomes = await this.modes.sync(key, pool, token, workers, livePods);
    const mode = pool.spec.sessionMode;
    for (const o of outcomes) {
      if (o.ok && o.switched)
        this.deps.events.record(pool, 'Normal', ADMIN_REASONS.SessionModeSwitched, `worker ${o.worker} switched to ${mode} (${o.detail})`);
      if (!o.ok && !o.draining)
        this.deps.events.record(
          pool,
          'Warning',
          ADMIN_REASONS.SessionModeSwitchFailed,
          `worker ${o.worker} did not switch to ${mode}: ${o.detail}`,
        );
    }
    const failed = outcomes.filter((o) => !o.ok);
    if (outcomes.length > 0)
      this.deps.logger.info(
        { pool: key, mode, switched: outcomes.filter((o) => o.switched).map((o) => o.worker), failed: failed.map((o) => o.worker) },
        'session mode sent to workers',
      );
    return failed.length > 0 ? { secretUid, requeueAfterMs: MODE_SWITCH_RETRY_MS } : { secretUid };
  }
}
