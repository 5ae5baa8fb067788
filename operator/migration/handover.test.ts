import { expect } from 'chai';
import { MAX_HANDOVER_MOVES, applyHandoverAnswer, handOver, handoverRequests, type HandoverCall, type HandoverReport } from './handover.ts';
import type { JournalSession } from './journal.ts';

function sessions(from: string | null, count: number, to = 't', start = 0): JournalSession[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${from ?? 'none'}-${start + i}`, from, fromEpoch: 3, to }));
}

const emptyReport = (): HandoverReport => ({ moved: 0, released: 0, fallback: { unreachable: 0, busy: 0, failed: 0, noEpoch: 0 } });

describe('live handover (executor side)', () => {
  it('one request per source in chunks of at most 1000; unowned, decided and same-owner sessions are not asked', () => {
    const all = [
      ...sessions('a', 2500),
      ...sessions('b', 3),
      ...sessions(null, 4),
      { id: 'done', from: 'b', fromEpoch: 1, to: 't', result: 'missing' as const },
      { id: 'here', from: 't', fromEpoch: 1, to: 't' },
    ];
    const requests = handoverRequests(all);
    expect(requests.map((r) => [r.source, r.moves.length])).to.deep.equal([
      ['a', MAX_HANDOVER_MOVES],
      ['a', MAX_HANDOVER_MOVES],
      ['a', 500],
      ['b', 3],
    ]);
    expect(requests[3]!.moves[0]).to.deep.equal({ sessionId: 'b-0', target: 't' });
  });

  it('an answer: moved with an epoch is journaled, idle is released, busy is returned, the rest left to the store-level move', () => {
    const list = sessions('a', 5);
    const byId = new Map(list.map((s) => [s.id, s]));
    const report = emptyReport();
    const busy = applyHandoverAnswer(
      byId,
      [
        { sessionId: 'a-0', outcome: 'moved', epoch: 4 },
        { sessionId: 'a-1', outcome: 'idle' },
        { sessionId: 'a-2', outcome: 'busy' },
        { sessionId: 'a-3', outcome: 'failed', message: 'lease changed' },
        { sessionId: 'a-4', outcome: 'moved' },
        { sessionId: 'unknown', outcome: 'moved', epoch: 9 },
      ],
      report,
    );
    expect(busy).to.deep.equal(['a-2']);
    expect(list.map((s) => [s.result, s.newEpoch])).to.deep.equal([
      ['moved', 4],
      ['released', undefined],
      [undefined, undefined],
      [undefined, undefined],
      [undefined, undefined],
    ]);
    expect(report).to.deep.equal({ moved: 1, released: 1, fallback: { unreachable: 0, busy: 0, failed: 1, noEpoch: 1 } });
  });

  it('busy sessions are asked again until the give-up time; an unreachable source leaves every session to the store', async () => {
    const list = [...sessions('a', 2), ...sessions('gone', 2)];
    let clock = 0;
    const calls: string[] = [];
    const call: HandoverCall = async ({ source, moves }) => {
      calls.push(`${source}:${moves.length}`);
      if (source === 'gone') return null;
      return moves.map((m) => ({ sessionId: m.sessionId, outcome: 'busy' as const }));
    };
    const report = await handOver(list, {
      call,
      migration: 'uid',
      deadlineMs: 100,
      giveUpAt: 1000,
      now: () => clock,
      sleep: async (ms) => void (clock += ms),
      busyRetryMs: 300,
    });
    // Asked at 0, 300, 600 and 900; another pause would pass the give-up time (1000).
    expect(calls).to.deep.equal(['a:2', 'gone:2', 'a:2', 'a:2', 'a:2']);
    expect(report.fallback).to.deep.equal({ unreachable: 2, busy: 2, failed: 0, noEpoch: 0 });
    expect(list.every((s) => s.result === undefined)).to.equal(true);
  });
});
