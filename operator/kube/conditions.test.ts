import { expect } from 'chai';
import { conditionsEqual, findCondition, isConditionTrue, removeCondition, setCondition, type Condition } from './conditions.ts';

const t0 = new Date('2026-01-01T00:00:00.123Z');
const t1 = new Date('2026-01-01T00:05:00.000Z');

describe('kube/conditions', () => {
  it('adds a new condition with a transition time and the generation', () => {
    const list = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Starting', message: 'no workers' }, 3, t0);
    expect(list).to.deep.equal([
      {
        type: 'Ready',
        status: 'False',
        reason: 'Starting',
        message: 'no workers',
        observedGeneration: 3,
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
  });

  it('keeps lastTransitionTime when only reason, message or generation change', () => {
    const first = setCondition([], { type: 'Ready', status: 'False', reason: 'Starting' }, 1, t0);
    const second = setCondition(first, { type: 'Ready', status: 'False', reason: 'Scaling', message: '1/3' }, 2, t1);
    const ready = findCondition(second, 'Ready');
    expect(ready?.lastTransitionTime).to.equal('2026-01-01T00:00:00Z');
    expect(ready?.reason).to.equal('Scaling');
    expect(ready?.message).to.equal('1/3');
    expect(ready?.observedGeneration).to.equal(2);
  });

  it('moves lastTransitionTime when the status flips', () => {
    const first = setCondition([], { type: 'Ready', status: 'False', reason: 'Starting' }, 1, t0);
    const second = setCondition(first, { type: 'Ready', status: 'True', reason: 'AllReady' }, 1, t1);
    expect(findCondition(second, 'Ready')?.lastTransitionTime).to.equal('2026-01-01T00:05:00Z');
    expect(isConditionTrue(second, 'Ready')).to.equal(true);
  });

  it('keeps the order of other conditions and does not mutate the input', () => {
    const base: Condition[] = [];
    const a = setCondition(base, { type: 'Ready', status: 'True', reason: 'R' }, 1, t0);
    const b = setCondition(a, { type: 'Degraded', status: 'False', reason: 'D' }, 1, t0);
    const c = setCondition(b, { type: 'Ready', status: 'False', reason: 'R2' }, 2, t1);
    expect(c.map((x) => x.type)).to.deep.equal(['Ready', 'Degraded']);
    expect(base).to.have.length(0);
    expect(findCondition(b, 'Ready')?.status).to.equal('True');
    expect(removeCondition(c, 'Ready').map((x) => x.type)).to.deep.equal(['Degraded']);
  });

  it('compares condition lists regardless of order', () => {
    const a = setCondition(
      setCondition([], { type: 'A', status: 'True', reason: 'x' }, 1, t0),
      { type: 'B', status: 'True', reason: 'y' },
      1,
      t0,
    );
    const b = [...a].reverse();
    expect(conditionsEqual(a, b)).to.equal(true);
    expect(conditionsEqual(a, setCondition(a, { type: 'A', status: 'True', reason: 'z' }, 1, t0))).to.equal(false);
    expect(conditionsEqual(undefined, [])).to.equal(true);
  });
});
