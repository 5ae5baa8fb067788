import { expect } from 'chai';
import type { KubeConfig } from '@kubernetes/client-node';
import { shareConnections } from './connections.ts';

function fakeKubeConfig() {
  let made = 0;
  const kc = {
    createDispatcher(_cluster: unknown, options: Record<string, unknown>) {
      made++;
      return { id: made, options };
    },
  };
  return { kc, made: () => made };
}

describe('shared/connections', () => {
  it('reuses one dispatcher per cluster and TLS options, and rebuilds it after maxAge', () => {
    const { kc, made } = fakeKubeConfig();
    let now = 0;
    shareConnections(kc as unknown as KubeConfig, 1000, () => now);
    const cluster = { name: 'c', server: 'https://x' };
    const a = kc.createDispatcher(cluster, { ca: Buffer.from('ca'), rejectUnauthorized: true });
    const b = kc.createDispatcher(cluster, { ca: Buffer.from('ca'), rejectUnauthorized: true });
    expect(b).to.equal(a);
    expect(made()).to.equal(1);
    kc.createDispatcher(cluster, { ca: Buffer.from('other') });
    expect(made()).to.equal(2);
    now = 1500;
    expect(kc.createDispatcher(cluster, { ca: Buffer.from('ca'), rejectUnauthorized: true })).to.not.equal(a);
    expect(made()).to.equal(3);
  });

  it('wraps only once', () => {
    const { kc, made } = fakeKubeConfig();
    shareConnections(kc as unknown as KubeConfig);
    shareConnections(kc as unknown as KubeConfig);
    kc.createDispatcher(null, {});
    kc.createDispatcher(null, {});
    expect(made()).to.equal(1);
  });
});
