// The state of one reconcile step of a SessionMigration: the object with its status as last
// written, and the writes (status only on change, Events on a phase change, metrics).
import type { MigrationPhase, MigrationProgress, SessionMigration, SessionMigrationStatus } from '../../api/index.ts';
import { setCondition } from '../../kube/conditions.ts';
import type { EventType } from '../../kube/events.ts';
import { migrationMetrics } from '../../migration/metrics.ts';
import type { Logger } from '../../observability/logger.ts';
import { currentPhase, remainingMs, transition } from './phases.ts';
import type { RunnerDeps } from './runner-deps.ts';
import type { PoolStore } from './store-access.ts';

export class StepContext {
  readonly m: SessionMigration;
  readonly uid: string;
  readonly namespace: string;
  ps: PoolStore | undefined;
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(deps: RunnerDeps, m: SessionMigration, log: Logger, now: () => number) {
    this.deps = deps;
    this.m = m;
    this.uid = m.metadata.uid ?? m.metadata.name ?? '';
    this.namespace = m.metadata.namespace ?? 'default';
    this.log = log;
    this.now = now;
  }

  get pool(): PoolStore {
    if (!this.ps) throw new Error('the pool store is not resolved yet');
    return this.ps;
  }

  remaining(): number {
    return remainingMs(this.m.status?.startTime, this.m.spec.deadlineSeconds, this.now());
  }

  event(type: EventType, reason: string, note: string): void {
    this.deps.event(this.m, type, reason, note);
  }

  condition(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string): void {
    const current = this.m.status ?? {};
    current.conditions = setCondition(
      current.conditions,
      { type, status, reason, message },
      this.m.metadata.generation,
      new Date(this.now()),
    );
    this.m.status = current;
  }

  async flush(): Promise<void> {
    await this.deps.writeStatus(this.m, this.m.status ?? {});
  }

  /** Moves to a phase (or refreshes the one held): a status write when anything changed, an Event when the phase did. */
  async to(
    phase: MigrationPhase,
    input: { reason: string; message: string; plan?: SessionMigrationStatus['plan']; progress?: MigrationProgress; journalKey?: string },
    type: EventType = 'Normal',
  ): Promise<void> {
    const before = currentPhase(this.m);
    const previous = this.m.status;
    const status = transition(previous, phase, {
      ...input,
      now: new Date(this.now()),
      ...(this.m.metadata.generation !== undefined ? { generation: this.m.metadata.generation } : {}),
    });
    if (before === phase && JSON.stringify(status) === JSON.stringify(previous)) return;
    this.m.status = status;
    await this.deps.writeStatus(this.m, status);
    if (before !== phase) {
      this.event(type, phase, `${before} -> ${phase}: ${input.message}`);
      if (this.ps) migrationMetrics(this.deps.registry).setPhase(this.m.spec.poolRef.name, this.m.metadata.name ?? '', phase);
      this.log.info(
        { migration: this.m.metadata.name, namespace: this.namespace, from: before, to: phase, reason: input.reason },
        'migration phase',
      );
    }
  }
}
