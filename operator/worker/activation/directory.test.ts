import { expect } from 'chai';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import { WorkerDirectory } from './forward.ts';

describe('worker directory', () => {
  it('takes a registered worker for gone only once its endpoint refused a connection', async () => {
    const store = new MemorySessionStore();
    await store.registerWorker({ pool: 'ns/p', worker: 'w1', endpoint: 'http://127.0.0.1:1', draining: false });
    const directory = new WorkerDirectory(store, 'ns/p');
    expect(await directory.isGone('w1')).to.equal(false);
    expect(await directory.isGone('w9')).to.equal(true);
    directory.markRefused('w1');
    expect(await directory.isGone('w1')).to.equal(true);
  });
});
