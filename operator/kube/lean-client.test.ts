// The lean Observable classes against the generated ones of @kubernetes/client-node: the same
// methods, the same requests for the same calls (through the package's own ObjectParamAPI-style
// call, middlewares included) and the same results; and, in a process of its own, that
// registerLeanClient swaps ObservableAPI.js so that only the groups constructed load.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  createConfiguration,
  PatchStrategy,
  ResponseContext,
  ServerConfiguration,
  setHeaderOptions,
  type RequestContext,
} from '@kubernetes/client-node';
import * as generated from '@kubernetes/client-node/dist/gen/types/ObservableAPI.js';
import { wrapHttpLibrary } from '@kubernetes/client-node/dist/gen/http/http.js';
import { repoRoot } from '../../e2e/harness/paths.ts';
import { leanObservable } from './lean-client.ts';

type Instance = Record<string, (...args: unknown[]) => { toPromise(): Promise<unknown> }>;
type Constructor = new (...args: unknown[]) => Instance;

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A configuration whose HTTP library records each request and answers with `answer`. */
function recording(answer: unknown) {
  const sent: Sent[] = [];
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration('https://apiserver.test', {}),
    httpApi: wrapHttpLibrary({
      send(request: RequestContext): Promise<ResponseContext> {
        sent.push({ url: request.getUrl(), method: request.getHttpMethod(), headers: request.getHeaders(), body: request.getBody() });
        const text = JSON.stringify(answer);
        return Promise.resolve(
          new ResponseContext(
            200,
            { 'content-type': 'application/json' },
            { text: () => Promise.resolve(text), binary: () => Promise.resolve(Buffer.from(text)), stream: () => null },
          ),
        );
      },
    }),
  });
  return { sent, configuration };
}

const groups = Object.keys(generated)
  .filter((name) => name.startsWith('Observable'))
  .map((name) => name.slice('Observable'.length));

describe('kube/lean-client', () => {
  it('gives every group of the generated ObservableAPI.js the same methods, whose factory method ends in _options', () => {
    expect(groups).to.include.members(['CoreV1Api', 'AppsV1Api', 'CustomObjectsApi', 'CoordinationV1Api', 'EventsV1Api']);
    const { configuration } = recording({});
    for (const group of groups) {
      const Generated = (generated as unknown as Record<string, Constructor>)[`Observable${group}`]!;
      const lean = new (leanObservable(group) as unknown as Constructor)(configuration);
      const full = new Generated(configuration);
      const methods = (o: object) => Object.getOwnPropertyNames(Object.getPrototypeOf(o)).filter((n) => n !== 'constructor');
      expect(methods(lean).sort(), group).to.deep.equal(methods(full).sort());
      // The lean methods place `_options` by the factory method's length: the generated method's.
      const factory = full.requestFactory as unknown as Record<string, (...args: unknown[]) => unknown>;
      for (const name of methods(factory)) expect(factory[name]!.length, `${group}.${name}`).to.equal(full[`${name}WithHttpInfo`]!.length);
    }
  });

  it('sends the requests the generated classes send and returns what they return', async () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' } };
    const patch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const calls: [string, string, unknown[]][] = [
      [
        'CoreV1Api',
        'listNamespacedPod',
        ['ns', 'true', undefined, undefined, undefined, 'app=x', 10, undefined, undefined, undefined, 30, false],
      ],
      ['CoreV1Api', 'createNamespacedPod', ['ns', pod, undefined, 'All', 'spo', undefined]],
      [
        'CoreV1Api',
        'patchNamespacedPod',
        ['p', 'ns', { metadata: { labels: { a: 'b' } } }, undefined, undefined, 'spo', undefined, undefined, patch],
      ],
      [
        'CustomObjectsApi',
        'patchNamespacedCustomObjectStatus',
        ['g', 'v1', 'ns', 'things', 't', { status: {} }, undefined, 'spo', undefined, undefined, patch],
      ],
      ['CoordinationV1Api', 'readNamespacedLease', ['lease', 'ns', undefined]],
    ];
    for (const [group, method, args] of calls) {
      const answers: unknown[] = [];
      const requests: Sent[][] = [];
      for (const Class of [
        (generated as unknown as Record<string, Constructor>)[`Observable${group}`]!,
        leanObservable(group) as unknown as Constructor,
      ]) {
        const { sent, configuration } = recording(pod);
        const api = new Class(configuration);
        answers.push(await api[method]!(...args).toPromise());
        requests.push(sent);
      }
      expect(requests[1], `${group}.${method}`).to.deep.equal(requests[0]);
      expect(requests[0]).to.have.length(1);
      expect(answers[1], `${group}.${method}`).to.deep.equal(answers[0]);
    }
  });

  it('registerLeanClient: a process loads only the groups it constructs, and the lean classes serve the package API', async () => {
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
      const { registerLeanClient } = await import(${JSON.stringify(path.join(repoRoot, 'operator/kube/lean-client.ts'))});
      registerLeanClient();
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      kc.loadFromClusterAndUser({ name: 'c', server: 'https://127.0.0.1:9' }, { name: 'u', token: 't' });
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const apis = loaded.filter((u) => u.includes('/client-node/dist/gen/apis/')).map((u) => u.split('/').pop());
      const observable = loaded.filter((u) => u.includes('/ObservableAPI.js')).map((u) => u.split('/').pop());
      const lean = core.api.constructor.toString().startsWith('class LeanObservable');
      console.log(JSON.stringify({ apis, observable, methods: typeof core.listNamespacedPod, name: core.api.constructor.name, lean }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot });
    const result = JSON.parse(stdout) as { apis: string[]; observable: string[]; methods: string; name: string; lean: boolean };
    expect(result.apis.sort()).to.deep.equal(['CoreV1Api.js', 'baseapi.js', 'exception.js']);
    // The generated module never loads (the lean one is answered by registerLeanClient's own hook).
    expect(result.observable).to.deep.equal([]);
    expect(result).to.include({ methods: 'function', name: 'ObservableCoreV1Api', lean: true });
  });
});
