// What the local kubelet needs to run a pod's containers as local processes: which local
// command stands in for which image (an explicit table), and the pod's ports (each declared
// container port gets a free loopback port, shared by all containers of the pod, as a pod
// shares one network namespace).
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { freePort } from './ports.ts';
import { repoRoot } from './paths.ts';
import { run } from './processes.ts';

export const RAW_PYTHON_HANDLER = path.join(repoRoot, 'operator/worker/contract/conformance/raw_python_handler.py');
/** The raw handler counting its own invocations in a file (the execute-once e2e test). */
export const COUNTING_HANDLER = path.join(repoRoot, 'e2e/handlers/counting_handler.py');

/** A local stand-in for a container image: the command its entrypoint becomes here. */
export interface LocalImage {
  image: RegExp;
  /** [program, ...args]; the container's own args are appended. May set things up first (a venv). */
  command(): Promise<string[]>;
}

let pythonEnv: Promise<string> | undefined;

/** The cached Python environment of the repository (`bash scripts/python-env.sh` prints its path). */
export function pythonVenv(): Promise<string> {
  pythonEnv ??= run('bash', [path.join(repoRoot, 'scripts/python-env.sh')], { cwd: repoRoot, timeoutMs: 900_000 }).then((out) => {
    const venv = out.trim().split('\n').pop() ?? '';
    if (!venv) throw new Error('scripts/python-env.sh printed no path');
    return venv;
  });
  return pythonEnv;
}

let python3: string | undefined;

/**
 * The interpreter `python3` on PATH really runs (a pyenv shim execs another binary): pid records
 * recognise a process by its executable, so they must name the real one.
 */
export function python3Executable(): string {
  python3 ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  return python3;
}

/** Images run locally besides the project's own (which runs `node <entry>` from the repository). */
export const LOCAL_IMAGES: LocalImage[] = [
  { image: /(^|\/)spo-dspy-worker(:|@|$)/, command: async () => [path.join(await pythonVenv(), 'bin/python'), '-m', 'spo_dspy_worker'] },
  { image: /(^|\/)spo-raw-python-handler(:|@|$)/, command: async () => [python3Executable(), RAW_PYTHON_HANDLER] },
  { image: /(^|\/)spo-counting-handler(:|@|$)/, command: async () => [python3Executable(), COUNTING_HANDLER] },
];

/** The absolute path of a program (a PATH lookup for a bare name): pid records compare executables. */
export function resolveProgram(program: string): string {
  if (program.includes('/')) return path.resolve(program);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  throw new Error(`${program} is not on PATH`);
}

/** Container port -> free loopback port, for every port any container of the pod declares. */
export async function podPorts(pod: V1Pod): Promise<Map<number, number>> {
  const ports = new Map<number, number>();
  for (const container of pod.spec?.containers ?? [])
    for (const p of container.ports ?? []) if (!ports.has(p.containerPort)) ports.set(p.containerPort, await freePort());
  return ports;
}

/** The loopback port an httpGet action of a container reaches: a port by number, or by the name of
 *  one of that container's own ports (as a kubelet resolves it). */
function httpGetPort(container: V1Container, port: number | string | undefined, ports: Map<number, number>): number | undefined {
  if (port === undefined) return undefined;
  const containerPort = typeof port === 'number' ? port : (container.ports?.find((p) => p.name === port)?.containerPort ?? Number(port));
  return ports.get(containerPort);
}

/** The loopback port a probe of a container reaches, or undefined. */
export function probePort(container: V1Container, probe: V1Probe | undefined, ports: Map<number, number>): number | undefined {
  return httpGetPort(container, probe?.httpGet?.port, ports);
}

/** A container's preStop httpGet hook, as the loopback port and path it asks, or undefined. */
export function preStopGet(container: V1Container, ports: Map<number, number>): { port: number; path: string } | undefined {
  const action = container.lifecycle?.preStop?.httpGet;
  const port = httpGetPort(container, action?.port, ports);
  return action && port !== undefined ? { port, path: action.path ?? '/' } : undefined;
}
