import { expect } from 'chai';
import type { V1Node } from '@kubernetes/client-node';
import { onChange } from './handlers.ts';

describe('controller/shared handlers', () => {
  it('onChange enqueues on add, delete and signature changes only (not on heartbeats or resyncs)', () => {
    const added: string[] = [];
    const handler = onChange<V1Node>(
      (n) => JSON.stringify([n.spec?.unschedulable ?? false]),
      (n) => n.metadata?.name,
      (key) => added.push(key),
    );
    const node = (rv: string, unschedulable = false): V1Node => ({
      kind: 'Node',
      metadata: { name: 'n1', resourceVersion: rv },
      spec: { unschedulable },
    });
    handler('add', node('1'));
    handler('update', node('2')); // a status heartbeat: same signature
    handler('resync', node('2'));
    expect(added).to.deep.equal(['n1']);
    handler('update', node('3', true));
    handler('delete', node('4', true));
    handler('add', node('5', true)); // seen again after the delete
    expect(added).to.deep.equal(['n1', 'n1', 'n1', 'n1']);
  });

  it('onChange fans out to several keys', () => {
    const added: string[] = [];
    const handler = onChange<V1Node>(
      () => 'same',
      () => ['a', 'b'],
      (key) => added.push(key),
    );
    handler('add', { metadata: { name: 'x' } });
    handler('update', { metadata: { name: 'x', resourceVersion: '2' } });
    expect(added).to.deep.equal(['a', 'b']);
  });

  it('onChange compares the first update of an object already known (a controller registering late)', () => {
    const added: string[] = [];
    const node: V1Node = { metadata: { name: 'n1', resourceVersion: '1' }, spec: {} };
    const handler = onChange<V1Node>(
      (n) => JSON.stringify([n.spec?.unschedulable ?? false]),
      (n) => n.metadata?.name,
      (key) => added.push(key),
      [node],
    );
    handler('update', { ...node, metadata: { ...node.metadata, resourceVersion: '2' } });
    expect(added).to.deep.equal([]);
    handler('update', { ...node, spec: { unschedulable: true } });
    expect(added).to.deep.equal(['n1']);
  });
});
