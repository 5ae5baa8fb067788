import { expect } from 'chai';
import { ApiException } from '@kubernetes/client-node';
import { evictPods, type EvictionApi } from './eviction.ts';

function fakeApi(answers: Record<string, number[]>): EvictionApi & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    createNamespacedPodEviction: async (param: { name: string }) => {
      calls.push(param.name);
      const code = answers[param.name]?.shift() ?? 201;
      if (code >= 400)
        throw new ApiException(
          code,
          'refused',
          { message: code === 429 ? 'Cannot evict pod as it would violate the pod disruption budget.' : 'x' },
          {},
        );
      return {};
    },
  };
}

describe('eviction', () => {
  it('retries a 429 from the budget until it passes; a gone pod counts as evicted', async () => {
    let now = 0;
    const api = fakeApi({ a: [429, 429, 201], b: [404] });
    const result = await evictPods(api, 'ns', ['a', 'b'], {
      deadlineAt: 10_000,
      retryMs: 1000,
      now: () => now,
      sleep: async (ms) => void (now += ms),
    });
    expect(result.evicted.sort()).to.deep.equal(['a', 'b']);
    expect(result.blocked).to.deep.equal([]);
    expect(api.calls.filter((c) => c === 'a')).to.have.length(3);
  });

  it('reports what is still blocked at the deadline', async () => {
    let now = 0;
    const api = fakeApi({ a: Array.from({ length: 50 }, () => 429) });
    const result = await evictPods(api, 'ns', ['a'], {
      deadlineAt: 3_500,
      retryMs: 1000,
      now: () => now,
      sleep: async (ms) => void (now += ms),
    });
    expect(result.evicted).to.deep.equal([]);
    expect(result.blocked[0]?.pod).to.equal('a');
    expect(result.blocked[0]?.reason).to.contain('disruption budget');
  });
});
