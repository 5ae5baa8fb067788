import { expect } from 'chai';
import { newSessionMigration, type SessionMigration, type SessionMigrationStatus } from '../../api/index.ts';
import { CONDITION_PODS_EVICTED, journalHeaderKey, roundUid } from './phases.ts';
import { MAX_ROUNDS, REMOVING_PODS, afterRound, currentRound, earlierRounds, nextStepOf, podRemoval } from './steps.ts';

const UID = '7f1c0c3e-1d2b-4c4e-9a4b-0c2f3c1d2e3f';

function evacuation(status?: SessionMigrationStatus, evacuate: { keepSourcePods?: boolean; evictPods?: boolean } = {}): SessionMigration {
  const m = newSessionMigration('m', 'ns', { poolRef: { name: 'p' }, type: 'Evacuate', evacuate: { pods: ['a'], ...evacuate } });
  m.metadata.uid = UID;
  if (status) m.status = status;
  return m;
}

const running = (round: number, extra: Partial<SessionMigrationStatus> = {}): SessionMigrationStatus => ({
  phase: 'Running',
  journalKey: journalHeaderKey('spo', 'ns/p', roundUid(UID, round)),
  ...extra,
});

describe('migration steps (the state machine, from status and journal)', () => {
  it('Pending starts, Planning plans round 0', () => {
    expect(nextStepOf(evacuation(), false)).to.deep.equal({ kind: 'start' });
    expect(nextStepOf(evacuation({ phase: 'Planning' }), false)).to.deep.equal({ kind: 'plan', round: 0 });
  });

  it('Running: the round named by the journal key advances while its journal runs, is decided once it ended', () => {
    const m = evacuation(running(2));
    expect(currentRound(m)).to.deep.equal({ round: 2, journalUid: `${UID}-r2` });
    expect(nextStepOf(m, false, { phase: 'Running' })).to.deep.equal({ kind: 'advance', round: 2, journalUid: `${UID}-r2` });
    for (const phase of ['Succeeded', 'Failed', 'RolledBack'] as const)
      expect(nextStepOf(m, false, { phase })).to.deep.equal({ kind: 'afterRound', round: 2, journalUid: `${UID}-r2` });
  });

  it('Running without a journal (a crash between status and journal) plans that round again; without a key, round 0', () => {
    expect(nextStepOf(evacuation(running(1)), false, 'absent')).to.deep.equal({ kind: 'plan', round: 1 });
    expect(nextStepOf(evacuation({ phase: 'Running' }), false, 'absent')).to.deep.equal({ kind: 'plan', round: 0 });
    // A key of another migration's journal is no round of this one.
    const foreign = evacuation({ phase: 'Running', journalKey: journalHeaderKey('spo', 'ns/p', 'other-uid') });
    expect(nextStepOf(foreign, false, { phase: 'Running' })).to.deep.equal({ kind: 'plan', round: 0 });
  });

  it('a pod removal in progress (PodsEvicted Unknown) continues before anything else', () => {
    const m = evacuation(
      running(0, {
        conditions: [{ type: CONDITION_PODS_EVICTED, status: 'Unknown', reason: REMOVING_PODS, message: '', lastTransitionTime: '' }],
      }),
    );
    expect(nextStepOf(m, false, { phase: 'Succeeded' })).to.deep.equal({ kind: 'removePods' });
  });

  it('terminal: done, or the force-drain release once', () => {
    expect(nextStepOf(evacuation({ phase: 'Succeeded' }), false)).to.deep.equal({ kind: 'done' });
    expect(nextStepOf(evacuation({ phase: 'Failed' }), true)).to.deep.equal({ kind: 'forceRelease' });
    const released = evacuation({
      phase: 'Failed',
      conditions: [{ type: 'ForcedRelease', status: 'True', reason: 'ForcedRelease', message: '', lastTransitionTime: '' }],
    });
    expect(nextStepOf(released, true)).to.deep.equal({ kind: 'done' });
  });

  it('a migration being deleted takes no step', () => {
    const m = evacuation(running(0));
    m.metadata.deletionTimestamp = new Date();
    expect(nextStepOf(m, false, { phase: 'Running' })).to.deep.equal({ kind: 'done' });
  });

  it('after a round: an Evacuate repeats while sessions are left, up to MAX_ROUNDS', () => {
    const ok = { phase: 'Succeeded' as const, reason: '' };
    expect(afterRound({ type: 'Evacuate', round: 0, header: ok, left: 0, remainingMs: 1000 })).to.deep.equal({ kind: 'finish' });
    expect(afterRound({ type: 'Evacuate', round: 0, header: ok, left: 3, remainingMs: 1000 })).to.deep.equal({
      kind: 'nextRound',
      round: 1,
    });
    expect(afterRound({ type: 'Evacuate', round: MAX_ROUNDS - 1, header: ok, left: 3, remainingMs: 1000 })).to.deep.equal({
      kind: 'sessionsLeft',
      left: 3,
    });
    expect(afterRound({ type: 'Rebalance', round: 0, header: ok, remainingMs: 1000 })).to.deep.equal({ kind: 'finish' });
  });

  it('after a round that lost its target or the store: an Evacuate re-plans while time is left; others fail with the round', () => {
    const lost = { phase: 'RolledBack' as const, reason: 'TargetGone' };
    expect(afterRound({ type: 'Evacuate', round: 1, header: lost, remainingMs: 1000 })).to.deep.equal({ kind: 'nextRound', round: 2 });
    expect(afterRound({ type: 'Evacuate', round: 1, header: lost, remainingMs: 0 })).to.deep.equal({
      kind: 'fail',
      phase: 'RolledBack',
      reason: 'TargetGone',
    });
    expect(afterRound({ type: 'Migrate', round: 0, header: lost, remainingMs: 1000 })).to.deep.equal({
      kind: 'fail',
      phase: 'RolledBack',
      reason: 'TargetGone',
    });
    const late = { phase: 'Failed' as const, reason: 'DeadlineExceeded' };
    expect(afterRound({ type: 'Evacuate', round: 0, header: late, remainingMs: 1000 })).to.deep.equal({
      kind: 'fail',
      phase: 'Failed',
      reason: 'DeadlineExceeded',
    });
  });

  it('emptied source pods: evicted by default (evictPods or not), kept with keepSourcePods', () => {
    expect(podRemoval(evacuation().spec)).to.equal('evict');
    expect(podRemoval(evacuation(undefined, { evictPods: true }).spec)).to.equal('evict');
    expect(podRemoval(evacuation(undefined, { keepSourcePods: true, evictPods: true }).spec)).to.equal('keep');
    const rebalance = newSessionMigration('r', 'ns', { poolRef: { name: 'p' }, type: 'Rebalance', rebalance: {} });
    expect(podRemoval(rebalance.spec)).to.equal('keep');
  });

  it('earlier rounds are named as the journals of the rounds before', () => {
    expect(earlierRounds(UID, 0)).to.deep.equal([]);
    expect(earlierRounds(UID, 2)).to.deep.equal([UID, `${UID}-r1`]);
  });
});
