// An in-memory Journal with the same rules as the Redis one (forward-only batch states, counters
// changed only on a real transition, terminal phases final), for the executor's unit tests.
import {
  TERMINAL_PHASES,
  canTransition,
  type BatchEntry,
  type CreateJournalInput,
  type Journal,
  type JournalCounters,
  type JournalHeader,
  type MigrationPhase,
} from '../journal.ts';
import type { Batch } from '../planner.ts';

interface Stored {
  header: JournalHeader;
  batches: Map<number, BatchEntry>;
}

export class MemoryJournal implements Journal {
  readonly journals = new Map<string, Stored>();
  readonly active = new Set<string>();
  /** Plans by uid, apart from the headers: a plan may be written before its journal's header (executor.createJournal). */
  readonly plans = new Map<string, Batch[]>();
  /** Every transition that changed something, in order (for assertions). */
  readonly log: { uid: string; index: number; state: string }[] = [];
  now: () => number = Date.now;

  async create(input: CreateJournalInput): Promise<boolean> {
    if (this.journals.has(input.uid)) return false;
    const now = this.now();
    this.journals.set(input.uid, {
      header: {
        uid: input.uid,
        pool: input.pool,
        kind: input.kind,
        phase: 'Running',
        onFailure: input.onFailure,
        summary: structuredClone(input.summary),
        batchCount: input.batchCount,
        totalSessions: input.summary.totalSessions,
        reason: '',
        createdAt: now,
        updatedAt: now,
        deadlineAt: input.deadlineAt,
        rollbackReason: '',
        moved: 0,
        released: 0,
        failed: 0,
        expired: 0,
        rolledBack: 0,
      },
      batches: new Map(),
    });
    this.active.add(input.uid);
    return true;
  }

  private get(uid: string): Stored {
    const stored = this.journals.get(uid);
    if (!stored) throw new Error(`no migration journal for ${uid}`);
    return stored;
  }

  async header(uid: string): Promise<JournalHeader | null> {
    const stored = this.journals.get(uid);
    return stored ? structuredClone(stored.header) : null;
  }

  async transition(uid: string, entry: BatchEntry, deltas: Partial<JournalCounters> = {}): Promise<boolean> {
    const stored = this.get(uid);
    const current = stored.batches.get(entry.index);
    if (!canTransition(current?.state, entry.state)) return false;
    stored.batches.set(entry.index, structuredClone(entry));
    for (const [name, value] of Object.entries(deltas) as [keyof JournalCounters, number][]) stored.header[name] += value;
    stored.header.updatedAt = this.now();
    this.log.push({ uid, index: entry.index, state: entry.state });
    return true;
  }

  async batch(uid: string, index: number): Promise<BatchEntry | null> {
    const entry = this.get(uid).batches.get(index);
    return entry ? structuredClone(entry) : null;
  }

  async batches(uid: string): Promise<BatchEntry[]> {
    return [...this.get(uid).batches.values()].map((e) => structuredClone(e)).sort((a, b) => a.index - b.index);
  }

  async savePlan(uid: string, batches: readonly Batch[]): Promise<void> {
    this.plans.set(uid, structuredClone([...batches]));
  }

  async plan(uid: string): Promise<Batch[]> {
    this.get(uid);
    return structuredClone(this.plans.get(uid) ?? []);
  }

  async markRollback(uid: string, reason: string): Promise<void> {
    this.get(uid).header.rollbackReason = reason;
  }

  async setPhase(uid: string, phase: MigrationPhase, reason = ''): Promise<boolean> {
    const header = this.get(uid).header;
    if (TERMINAL_PHASES.includes(header.phase)) return false;
    header.phase = phase;
    header.reason = reason;
    header.updatedAt = this.now();
    if (TERMINAL_PHASES.includes(phase)) this.active.delete(uid);
    return true;
  }

  async listActive(): Promise<string[]> {
    return [...this.active];
  }

  async remove(uid: string): Promise<void> {
    this.journals.delete(uid);
    this.plans.delete(uid);
    this.active.delete(uid);
  }
}
