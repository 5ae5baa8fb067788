// The operator process loads only the API groups of @kubernetes/client-node it constructs.
// The package's generated ObservableAPI.js (7 MB of source) defines one Observable class per API
// group and imports every group's request factory (6 MB more); KubeConfig alone loads it (config.js
// imports gen/index.js, which imports ObjectParamAPI.js, which imports ObservableAPI.js), so no
// deep import avoids it. registerLeanClient() swaps that one module, for this process, for an
// equivalent whose classes load their group's request factory and response processor when first
// constructed: the operator constructs at most 7 groups of 65. Each generated method is the same
// few lines around the group's request factory and response processor (see ObservableAPI.js);
// leanObservable reproduces them from the factory's methods, so the package's own
// ObjectParamAPI.js, factories and processors still do all the work. docs/operator.md, "Memory".
import { createRequire, registerHooks } from 'node:module';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const GEN = '@kubernetes/client-node/dist/gen';
/** The module swapped, and the one module that imports it. */
const OBSERVABLE_SPECIFIER = './ObservableAPI.js';
const IMPORTER_SUFFIX = '/@kubernetes/client-node/dist/gen/types/ObjectParamAPI.js';
const LEAN_QUERY = '?spo-lean';

/** The shapes of the generated code this module relies on (rxjsStub.js, configuration.js). */
interface Observable<T> {
  pipe<U>(callback: (value: T) => U | Promise<U>): Observable<U>;
  toPromise(): Promise<T>;
}
interface Middleware {
  pre(context: unknown): Observable<unknown>;
  post(response: unknown): Observable<unknown>;
}
interface Configuration {
  middleware: Middleware[];
  httpApi: { send(context: unknown): Observable<unknown> };
}
interface RxStub {
  from<T>(promise: Promise<T>): Observable<T>;
  of<T>(value: T): Observable<T>;
  mergeMap<T, U>(callback: (value: T) => Observable<U>): (value: T) => Promise<U>;
  map<T, U>(callback: (value: T) => U): (value: T) => U;
}
type Method = (...args: unknown[]) => unknown;
type Constructor = new (...args: unknown[]) => Record<string, unknown>;

const rx = require(`${GEN}/rxjsStub.js`) as RxStub;
const { mergeConfiguration } = require(`${GEN}/configuration.js`) as {
  mergeConfiguration(this: void, conf: Configuration, options: unknown): Configuration;
};

interface LeanInstance {
  configuration: Configuration;
  requestFactory: Record<string, Method>;
  responseProcessor: Record<string, Method>;
}

/** What a generated `<method>WithHttpInfo` does: the request, the middlewares, the response. */
function withHttpInfo(this: LeanInstance, name: string, arity: number, args: unknown[]): Observable<unknown> {
  const config = mergeConfiguration(this.configuration, args[arity - 1]);
  const params = Array.from({ length: arity - 1 }, (_, i) => args[i]);
  const requestContextPromise = this.requestFactory[name]!(...params, config) as Promise<unknown>;
  let pre = rx.from(requestContextPromise);
  for (const middleware of config.middleware) pre = pre.pipe(rx.mergeMap((ctx) => middleware.pre(ctx)));
  return pre.pipe(rx.mergeMap((ctx) => config.httpApi.send(ctx))).pipe(
    rx.mergeMap((response) => {
      let post = rx.of(response);
      // In place, as the generated code does (the order of two or more middlewares alternates).
      for (const middleware of config.middleware.reverse()) post = post.pipe(rx.mergeMap((rsp) => middleware.post(rsp)));
      return post.pipe(rx.map((rsp) => this.responseProcessor[`${name}WithHttpInfo`]!(rsp)));
    }),
  );
}

/**
 * The Observable class of one API group (e.g. `CoreV1Api`), as ObservableAPI.js exports it, whose
 * group module (apis/<group>.js) is loaded on the first construction.
 */
export function leanObservable(group: string): Constructor {
  let loaded = false;
  let Factory: Constructor;
  let Processor: Constructor;
  class LeanObservable {
    configuration: Configuration;
    requestFactory: Record<string, unknown>;
    responseProcessor: Record<string, unknown>;
    constructor(configuration: Configuration, requestFactory?: Record<string, unknown>, responseProcessor?: Record<string, unknown>) {
      if (!loaded) load();
      this.configuration = configuration;
      this.requestFactory = requestFactory ?? new Factory(configuration);
      this.responseProcessor = responseProcessor ?? new Processor();
    }
  }
  const load = () => {
    const module = require(`${GEN}/apis/${group}.js`) as Record<string, Constructor>;
    Factory = module[`${group}RequestFactory`]!;
    Processor = module[`${group}ResponseProcessor`]!;
    const proto = LeanObservable.prototype as unknown as Record<string, Method>;
    for (const name of Object.getOwnPropertyNames(Factory.prototype)) {
      if (name === 'constructor') continue;
      // The generated methods take the factory method's parameters, the last one `_options`.
      const arity = (Factory.prototype as Record<string, Method>)[name]!.length;
      proto[`${name}WithHttpInfo`] = function (this: LeanInstance, ...args: unknown[]) {
        return withHttpInfo.call(this, name, arity, args);
      };
      proto[name] = function (this: LeanInstance, ...args: unknown[]) {
        return withHttpInfo.call(this, name, arity, args).pipe((r) => (r as { data: unknown }).data);
      };
    }
    loaded = true;
  };
  Object.defineProperty(LeanObservable, 'name', { value: `Observable${group}` });
  return LeanObservable as unknown as Constructor;
}

/** The source of the module that replaces ObservableAPI.js: one lean class per group of apis/. */
function leanSource(observableUrl: string): string {
  const apis = path.join(path.dirname(fileURLToPath(observableUrl)), '../apis');
  const groups = readdirSync(apis)
    .map((file) => /^(\w+Api)\.js$/.exec(file)?.[1])
    .filter((group): group is string => group !== undefined);
  const lines = [`import { leanObservable } from ${JSON.stringify(import.meta.url)};`];
  for (const group of groups) lines.push(`export const Observable${group} = leanObservable(${JSON.stringify(group)});`);
  return lines.join('\n');
}

let registered = false;

/** Swaps ObservableAPI.js for lean classes in this process; call before @kubernetes/client-node loads. */
export function registerLeanClient(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (specifier === OBSERVABLE_SPECIFIER && context.parentURL?.endsWith(IMPORTER_SUFFIX))
        return { ...resolved, url: resolved.url + LEAN_QUERY };
      return resolved;
    },
    load(url, context, nextLoad) {
      if (!url.endsWith(LEAN_QUERY)) return nextLoad(url, context);
      return { format: 'module', source: leanSource(url.slice(0, -LEAN_QUERY.length)), shortCircuit: true };
    },
  });
}
