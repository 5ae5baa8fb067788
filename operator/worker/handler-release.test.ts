import { expect } from 'chai';
import { HandlerRelease } from './handler-release.ts';

/** Whether the promise settled within ms. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}

describe('handler release (the handler container’s preStop hook)', () => {
  it('waits for the drain of a stop that began, however long past the wait', async () => {
    const release = new HandlerRelease(50);
    let drain: () => void = () => undefined;
    release.stopping(new Promise<void>((resolve) => (drain = resolve)));
    const released = release.released();
    expect(await settlesWithin(released, 200), 'released while the drain runs').to.equal(false);
    drain();
    expect(await settlesWithin(released, 200), 'released once drained').to.equal(true);
  });

  it('waits for a stop that begins after the hook came, then for its drain', async () => {
    const release = new HandlerRelease(300);
    const released = release.released();
    let drain: () => void = () => undefined;
    setTimeout(() => release.stopping(new Promise<void>((resolve) => (drain = resolve))), 20);
    expect(await settlesWithin(released, 400), 'released while the drain runs').to.equal(false);
    drain();
    expect(await settlesWithin(released, 200)).to.equal(true);
  });

  it('answers after the wait when no stop begins (the handler container alone restarts)', async () => {
    const release = new HandlerRelease(50);
    const released = release.released();
    expect(await settlesWithin(released, 10)).to.equal(false);
    expect(await settlesWithin(released, 300)).to.equal(true);
  });

  it('a drain that failed still releases the handler', async () => {
    const release = new HandlerRelease(50);
    const failed = Promise.reject(new Error('store down'));
    failed.catch(() => undefined);
    release.stopping(failed);
    expect(await settlesWithin(release.released(), 200)).to.equal(true);
  });
});
