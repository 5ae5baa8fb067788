import { expect } from 'chai';
import { FakeClock } from '../../kube/clock.ts';
import { Sweeper } from './sweeper.ts';

describe('pool/sweeper', () => {
  it('sweeps each pool once per interval from one timer, first at a random point of the interval', async () => {
    const clock = new FakeClock();
    const swept: string[] = [];
    const sweeper = new Sweeper({ clock, random: () => 0.5, sweep: async (key) => void swept.push(key) });
    sweeper.start();
    sweeper.schedule('ns/a', 10_000);
    sweeper.schedule('ns/b', 20_000);
    sweeper.schedule('ns/a', 10_000); // idempotent
    expect(clock.pending()).to.equal(1, 'one timer for all pools');
    await clock.advance(4_999);
    expect(swept).to.deep.equal([]);
    await clock.advance(1);
    expect(swept).to.deep.equal(['ns/a']);
    await clock.advance(5_000);
    expect(swept).to.deep.equal(['ns/a', 'ns/b']);
    await clock.advance(5_000);
    expect(swept).to.deep.equal(['ns/a', 'ns/b', 'ns/a']);
    sweeper.forget('ns/a');
    await clock.advance(60_000);
    expect(swept.filter((k) => k === 'ns/a')).to.have.length(2);
    expect(swept.filter((k) => k === 'ns/b')).to.have.length(4);
    await sweeper.stop();
    expect(clock.pending()).to.equal(0);
  });

  it('a failing sweep keeps its schedule; a shorter interval applies at once', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const sweeper = new Sweeper({
      clock,
      random: () => 0,
      sweep: async () => {
        calls++;
        throw new Error('store down');
      },
    });
    sweeper.start();
    sweeper.schedule('ns/a', 30_000);
    await clock.advance(0);
    expect(calls).to.equal(1);
    sweeper.schedule('ns/a', 1_000);
    await clock.advance(1_000);
    expect(calls).to.equal(2);
    await clock.advance(3_000);
    expect(calls).to.equal(5);
    await sweeper.stop();
  });
});
