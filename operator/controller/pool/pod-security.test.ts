import { expect } from 'chai';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import { desiredDeployment } from './desired.ts';
import { DEFAULT_WORKER_RESOURCES, TMP_MOUNT_PATH, TMP_VOLUME, hardenPodSpec } from './pod-security.ts';

function pool(spec: Parameters<typeof newSessionPool>[2] = {}): SessionPool {
  return newSessionPool('web', 'ns1', { replicas: 1, worker: { image: 'img:1' }, store: { endpoints: ['redis-0:6379'] }, ...spec });
}

function podOf(p: SessionPool): V1PodSpec {
  const spec = desiredDeployment(p, 1).spec?.template.spec;
  if (!spec) throw new Error('no pod spec');
  return spec;
}

const RESTRICTED_CONTAINER = {
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

describe('pool/pod-security', () => {
  it('hardens the worker pod by default: non-root, read-only root, no capabilities, seccomp, no token', () => {
    const spec = podOf(pool());
    expect(spec.automountServiceAccountToken).to.equal(false);
    expect(spec.securityContext).to.deep.equal({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const worker = spec.containers[0];
    expect(worker?.securityContext).to.deep.equal(RESTRICTED_CONTAINER);
    // The root filesystem is read-only: /tmp is an emptyDir.
    expect(worker?.volumeMounts).to.deep.include({ name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH });
    expect(spec.volumes?.find((v) => v.name === TMP_VOLUME)?.emptyDir).to.deep.equal({ sizeLimit: '64Mi' });
  });

  it('gives the worker default requests and limits; spec.worker.resources, then the template, win', () => {
    expect(podOf(pool()).containers[0]?.resources).to.deep.equal(DEFAULT_WORKER_RESOURCES);
    const fromWorker = pool({ worker: { image: 'i', resources: { limits: { memory: '2Gi' } } } });
    expect(podOf(fromWorker).containers[0]?.resources).to.deep.equal({ limits: { memory: '2Gi' } });
    const fromTemplate = pool({
      template: { spec: { containers: [{ name: 'worker', resources: { requests: { cpu: '2' } } }] as V1Container[] } },
    });
    expect(podOf(fromTemplate).containers[0]?.resources).to.deep.equal({ requests: { cpu: '2' } });
  });

  it('applies to every container the pod has: a handler, a sidecar, init containers', () => {
    const spec = podOf(
      pool({
        template: {
          spec: {
            containers: [{ name: 'handler', image: 'py:1' }],
            initContainers: [{ name: 'init', image: 'busybox' }],
          },
        },
      }),
    );
    expect(spec.containers.map((c) => c.name)).to.deep.equal(['worker', 'handler']);
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      expect(c.securityContext, c.name).to.deep.equal(RESTRICTED_CONTAINER);
      expect(c.volumeMounts, c.name).to.deep.include({ name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH });
    }
    expect(spec.volumes?.filter((v) => v.name === TMP_VOLUME)).to.have.length(1);
  });

  it('lets the template override each default, field by field', () => {
    const spec = podOf(
      pool({
        template: {
          spec: {
            automountServiceAccountToken: true,
            securityContext: { runAsUser: 2000, fsGroup: 2000 },
            containers: [
              {
                name: 'worker',
                securityContext: { readOnlyRootFilesystem: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
              },
            ] as V1Container[],
          },
        },
      }),
    );
    expect(spec.automountServiceAccountToken).to.equal(true);
    expect(spec.securityContext).to.deep.equal({
      runAsNonRoot: true,
      runAsUser: 2000,
      runAsGroup: 10001,
      fsGroup: 2000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const worker = spec.containers[0];
    expect(worker?.securityContext?.readOnlyRootFilesystem).to.equal(false);
    expect(worker?.securityContext?.capabilities).to.deep.equal({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
    expect(worker?.securityContext?.allowPrivilegeEscalation).to.equal(false);
    // A writable root needs no /tmp volume.
    expect(worker?.volumeMounts ?? []).to.not.deep.include({ name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH });
    expect(spec.volumes ?? []).to.not.deep.include({ name: TMP_VOLUME, emptyDir: { sizeLimit: '64Mi' } });
  });

  it('keeps a /tmp the template mounts itself, and never adds a second volume', () => {
    const spec = hardenPodSpec({
      containers: [{ name: 'worker', volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }] }],
      volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory' } }],
    });
    expect(spec.containers[0]?.volumeMounts).to.deep.equal([{ name: 'scratch', mountPath: '/tmp' }]);
    expect(spec.volumes).to.deep.equal([{ name: 'scratch', emptyDir: { medium: 'Memory' } }]);
  });

  it('does not share the defaults between pods (no aliasing of the frozen objects)', () => {
    const a = hardenPodSpec({ containers: [{ name: 'worker' }] });
    a.securityContext!.seccompProfile!.type = 'Unconfined';
    a.containers[0]!.securityContext!.capabilities!.drop!.push('X');
    const b = hardenPodSpec({ containers: [{ name: 'worker' }] });
    expect(b.securityContext?.seccompProfile?.type).to.equal('RuntimeDefault');
    expect(b.containers[0]?.securityContext?.capabilities?.drop).to.deep.equal(['ALL']);
  });
});
