import { expect } from 'chai';
import { newSessionPool, schemaErrors, SessionPoolSpecSchema, type SessionPool } from '../../api/index.ts';
import { desiredDeployment } from './desired.ts';

function pool(spec: Parameters<typeof newSessionPool>[2] = {}): SessionPool {
  const p = newSessionPool('dspy', 'ns1', { replicas: 2, worker: { image: 'runtime:1' }, store: { endpoints: ['redis-0:6379'] }, ...spec });
  p.metadata.uid = 'uid-1';
  return p;
}

const containers = (p: SessionPool) => desiredDeployment(p, 1).spec?.template.spec?.containers ?? [];
const envOf = (c: { env?: { name: string; value?: string; valueFrom?: unknown }[] } | undefined) =>
  Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));

describe('pool/handler-container', () => {
  it('a pool without spec.handler has the worker container only, and no handler env', () => {
    const [worker, ...rest] = containers(pool());
    expect(rest).to.have.length(0);
    expect(envOf(worker)).to.not.have.any.keys('SPO_HANDLER_PORT', 'SPO_HANDLER_TIMEOUT_MS');
  });

  it('adds the handler as a second container with defaults: port 8081, no probe of its own (loopback only), 60 s deadline', () => {
    const cs = containers(pool({ handler: { image: 'spo-dspy-worker:1' } }));
    expect(cs.map((c) => c.name)).to.deep.equal(['worker', 'handler']);
    const [worker, handler] = cs;
    expect(handler?.image).to.equal('spo-dspy-worker:1');
    expect(handler?.ports).to.deep.equal([{ name: 'handler', containerPort: 8081, protocol: 'TCP' }]);
    // The handler listens on loopback, where the kubelet's probes cannot reach: the worker's
    // /readyz carries the handler's readiness instead.
    expect(handler).to.not.have.property('readinessProbe');
    expect(envOf(handler)).to.deep.equal({
      SPO_HANDLER_PORT: '8081',
      SPO_POOL: 'dspy',
      SPO_WORKER_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
    });
    expect(envOf(worker)).to.include({ SPO_HANDLER_PORT: '8081', SPO_HANDLER_TIMEOUT_MS: '60000' });
    // Its SIGTERM waits until the worker's drain no longer sends it anything (the worker's port, by number).
    expect(handler?.lifecycle).to.deep.equal({ preStop: { httpGet: { path: '/lifecycle/handler-stop', port: 8080 } } });
    expect(handler).to.not.have.any.keys('command', 'args', 'envFrom', 'resources', 'imagePullPolicy');
  });

  it('passes every spec.handler field; the contract variables win over the user env', () => {
    const cs = containers(
      pool({
        handler: {
          image: 'h:2',
          imagePullPolicy: 'IfNotPresent',
          command: ['python', '-m', 'spo_dspy_worker'],
          args: ['--verbose'],
          env: [
            { name: 'DSPY_LM', value: 'openai/gpt-4o-mini' },
            { name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'llm', key: 'key' } } },
            { name: 'SPO_HANDLER_PORT', value: '1' },
          ],
          envFrom: [{ secretRef: { name: 'extra' } }],
          resources: { requests: { cpu: '500m', memory: '1Gi' } },
          port: 9000,
          timeoutSeconds: 120,
          readinessProbe: { httpGet: { path: '/custom', port: 9000 }, periodSeconds: 1 },
        },
      }),
    );
    const handler = cs[1];
    expect(handler?.command).to.deep.equal(['python', '-m', 'spo_dspy_worker']);
    expect(handler?.args).to.deep.equal(['--verbose']);
    expect(handler?.imagePullPolicy).to.equal('IfNotPresent');
    expect(handler?.envFrom).to.deep.equal([{ secretRef: { name: 'extra' } }]);
    expect(handler?.resources).to.deep.equal({ requests: { cpu: '500m', memory: '1Gi' } });
    expect(handler?.readinessProbe).to.deep.equal({ httpGet: { path: '/custom', port: 9000 }, periodSeconds: 1 });
    expect(envOf(handler)).to.deep.include({
      DSPY_LM: 'openai/gpt-4o-mini',
      OPENAI_API_KEY: { secretKeyRef: { name: 'llm', key: 'key' } },
      SPO_HANDLER_PORT: '9000',
    });
    expect(handler?.env?.filter((e) => e.name === 'SPO_HANDLER_PORT')).to.have.length(1);
    expect(envOf(cs[0])).to.include({ SPO_HANDLER_PORT: '9000', SPO_HANDLER_TIMEOUT_MS: '120000' });
  });

  it('replaces a template container named handler, keeps other extra containers', () => {
    const p = pool({
      handler: { image: 'h:1' },
      template: {
        spec: {
          containers: [
            { name: 'handler', image: 'old' },
            { name: 'sidecar', image: 's:1' },
          ],
        },
      },
    });
    expect(containers(p).map((c) => `${c.name}=${c.image}`)).to.deep.equal(['worker=runtime:1', 'handler=h:1', 'sidecar=s:1']);
  });

  it('the schema defaults port and timeout and refuses out-of-range values', () => {
    expect(pool({ handler: { image: 'h:1' } }).spec.handler).to.deep.equal({ image: 'h:1', port: 8081, timeoutSeconds: 60 });
    const spec = { ...pool().spec, handler: { image: 'h', port: 70000, timeoutSeconds: 0 } };
    const errors = schemaErrors(SessionPoolSpecSchema, spec).join(' ');
    expect(errors).to.match(/handler\/port/);
    expect(errors).to.match(/handler\/timeoutSeconds/);
  });
});
