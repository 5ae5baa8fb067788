// The memory router's answer for a session the store lacks, by the mode its worker is in when it answers.
import { expect } from 'chai';
import { createLogger } from '../../observability/logger.ts';
import { MemorySessionStore } from '../../store/testing/memory-store.ts';
import { WorkerError } from '../errors.ts';
import { SessionModes } from '../sessions/modes.ts';
import type { SessionMode } from '../sessions/types.ts';
import { Forwarder, WorkerDirectory } from './forward.ts';
import { MemoryRouter } from './memory-router.ts';
import type { SessionRequest } from './router.ts';
import { codeOf } from '../testing/error-code.ts';

describe('memory router: a session the store lacks', () => {
  const id = 'AAAAAAAAAAAAAAAAAAAAAA';
  const request: SessionRequest = { method: 'POST', path: `/v1/sessions/${id}/execute`, body: '{"handler":"incr","args":{}}' };
  const forwarder = new Forwarder('w1');
  after(() => forwarder.close());

  function routerIn(mode: SessionMode): { router: MemoryRouter; modes: SessionModes } {
    const store = new MemorySessionStore();
    const modes = new SessionModes(
      { pool: 'p', worker: 'w1', store, sessionTtlSeconds: 3600, anonTtlSeconds: 300, maxSessionBytes: 4096 },
      mode,
    );
    const router = new MemoryRouter({
      store,
      pool: 'p',
      worker: 'w1',
      modes,
      directory: new WorkerDirectory(store, 'p'),
      forwarder,
      logger: createLogger('test').child({}, { level: 'silent' }),
      holds: () => false,
    });
    return { router, modes };
  }

  it('is a 404 in Centralized, and in Dual once every peer answered that none holds it', async () => {
    const notFound = new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    expect(await codeOf(routerIn('Centralized').router.elsewhere(id, request, notFound))).to.equal('SESSION_NOT_FOUND');
    expect(await codeOf(routerIn('Dual').router.elsewhere(id, request, notFound))).to.equal('SESSION_NOT_FOUND');
  });

  it('is a retry (SESSION_MOVING), not a 404, when the worker switched to WorkerLocal while the request was routed in Dual', async () => {
    const { router, modes } = routerIn('Dual');
    await modes.switchTo('WorkerLocal');
    const notFound = new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    expect(await codeOf(router.elsewhere(id, request, notFound))).to.equal('SESSION_MOVING');
  });
});
