import type { Cluster } from 'ioredis';
import { MigrationJournal } from '../../migration/journal.ts';
import { expect } from 'chai';
import {
  PhaseTransitionError,
  apiPlan,
  canTransition,
  isTerminal,
  journalHeaderKey,
  journalUidFromKey,
  remainingMs,
  roundOf,
  roundUid,
  transition,
} from './phases.ts';

const now = new Date('2026-01-02T03:04:05.678Z');

describe('migration phases', () => {
  it('allows the documented transitions only', () => {
    expect(canTransition('Pending', 'Planning')).to.equal(true);
    expect(canTransition('Planning', 'Running')).to.equal(true);
    expect(canTransition('Planning', 'Succeeded')).to.equal(true); // dry run
    expect(canTransition('Running', 'RolledBack')).to.equal(true);
    expect(canTransition('Pending', 'Running')).to.equal(false);
    expect(canTransition('Planning', 'RolledBack')).to.equal(false);
    for (const terminal of ['Succeeded', 'Failed', 'RolledBack'] as const) {
      expect(isTerminal(terminal)).to.equal(true);
      for (const to of ['Pending', 'Planning', 'Running', 'Succeeded', 'Failed', 'RolledBack'] as const)
        expect(canTransition(terminal, to)).to.equal(false);
    }
  });

  it('never leaves a terminal phase', () => {
    const done = transition({ phase: 'Running' }, 'Succeeded', { reason: 'SessionsMoved', message: 'ok', now });
    expect(() => transition(done, 'Running', { reason: 'x', message: '', now })).to.throw(PhaseTransitionError);
  });

  it('sets startTime on Planning, completionTime on a terminal phase, and conditions', () => {
    const planning = transition(undefined, 'Planning', { reason: 'Planning', message: 'p', now, generation: 1 });
    expect(planning.startTime).to.equal('2026-01-02T03:04:05Z');
    expect(planning.completionTime).to.equal(undefined);
    expect(planning.conditions?.find((c) => c.type === 'Progressing')?.status).to.equal('True');
    const later = new Date(now.getTime() + 60_000);
    const running = transition(planning, 'Running', { reason: 'Running', message: 'r', now: later, journalKey: '{spo:mig:u}:h' });
    expect(running.startTime).to.equal(planning.startTime);
    expect(running.journalKey).to.equal('{spo:mig:u}:h');
    // Progressing stays True: its lastTransitionTime does not move.
    expect(running.conditions?.find((c) => c.type === 'Progressing')?.lastTransitionTime).to.equal('2026-01-02T03:04:05Z');
    const failed = transition(running, 'RolledBack', { reason: 'TargetGone', message: 'w gone', now: later });
    expect(failed.completionTime).to.equal('2026-01-02T03:05:05Z');
    expect(failed.reason).to.equal('TargetGone');
    const succeeded = failed.conditions?.find((c) => c.type === 'Succeeded');
    expect(succeeded?.status).to.equal('False');
    expect(succeeded?.reason).to.equal('TargetGone');
    expect(failed.conditions?.find((c) => c.type === 'Progressing')?.status).to.equal('False');
  });

  it('a dry run goes Planning -> Succeeded with the plan', () => {
    const planning = transition(undefined, 'Planning', { reason: 'Planning', message: '', now });
    const done = transition(planning, 'Succeeded', {
      reason: 'DryRun',
      message: 'plan only',
      now,
      plan: { totalSessions: 3, moves: [{ from: 'a', to: 'b', sessions: 3 }] },
    });
    expect(done.phase).to.equal('Succeeded');
    expect(done.plan?.totalSessions).to.equal(3);
  });

  it('round uids round-trip', () => {
    const uid = '7f1c0c3e-1d2b-4c4e-9a4b-0c2f3c1d2e3f';
    expect(roundOf(uid, roundUid(uid, 0))).to.equal(0);
    expect(roundOf(uid, roundUid(uid, 3))).to.equal(3);
    expect(roundOf(uid, 'other-r1')).to.equal(undefined);
    expect(journalUidFromKey(journalHeaderKey('my.prefix', 'team-a/web', roundUid(uid, 1)))).to.equal(`${uid}-r1`);
    expect(journalHeaderKey('spo', 'team-a/web', 'u-1')).to.equal('{spo:mig:team-a/web:u-1}:h');
    // status.journalKey names the key the pool's journal really writes.
    const journal = new MigrationJournal({} as Cluster, { prefix: 'spo', pool: 'team-a/web' });
    expect(journalHeaderKey('spo', 'team-a/web', 'u-1')).to.equal(journal.keys('u-1').header);
    expect(journalUidFromKey('garbage')).to.equal(undefined);
  });

  it('bounds the plan written to status and reports truncation', () => {
    const moves = Array.from({ length: 120 }, (_, i) => ({ from: `w${i}`, to: 'x', sessions: 1 }));
    const plan = apiPlan({ totalSessions: 150, moves, omittedMoves: 0 });
    expect(plan.moves).to.have.length(100);
    expect(plan.truncated).to.equal(true);
    expect(apiPlan({ totalSessions: 0, moves: [], omittedMoves: 0 })).to.deep.equal({ totalSessions: 0 });
  });

  it('computes the time left before the deadline from the start', () => {
    expect(remainingMs('2026-01-02T03:04:05Z', 60, Date.parse('2026-01-02T03:04:35Z'))).to.equal(30_000);
    expect(remainingMs(undefined, 10, 1000)).to.equal(10_000);
  });
});
