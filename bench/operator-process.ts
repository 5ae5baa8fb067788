// The operator as bench/operator.bench.ts runs it: a child process with every controller, as the
// chart runs it, either the build the image ships (dist/, `npm run build`) or the TypeScript
// sources run with Node's type stripping, or those with @kubernetes/client-node loaded whole
// (the operator before issue 15); and what the bench reads from it (RSS, CPU ticks, its metrics).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../e2e/harness/paths.ts';
import { startProcess, type ProcessRecord } from '../e2e/harness/processes.ts';

export type OperatorEntry = 'built' | 'sources' | 'before';

export const ENTRIES: Record<OperatorEntry, { file: string; args: string[]; what: string }> = {
  built: { file: 'dist/operator/cmd/operator.js', args: [], what: 'as the image and the chart run it' },
  sources: { file: 'operator/cmd/operator.ts', args: [], what: 'the sources, type stripping' },
  before: {
    file: 'operator/cmd/operator.ts',
    args: ['--no-lean-kube-client'],
    what: 'the sources, client loaded whole: the operator before issue 15',
  },
};

export interface OperatorProcessOptions {
  name: string;
  entry: OperatorEntry;
  runDir: string;
  /** Node flags (the chart's NODE_OPTIONS). */
  nodeArgs: string[];
  /** The operator's flags after the entry point. */
  args: string[];
  /** MALLOC_ARENA_MAX, or '' for glibc's default. */
  mallocArenas: string;
  env: NodeJS.ProcessEnv;
}

export interface OperatorProcess {
  record: ProcessRecord;
  /** The metrics port the operator picked (it runs with --metrics-port=0). */
  port: string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(250);
  }
}

/** Compiles the operator as the image does (tsconfig.build.json into dist/). */
export async function buildOperator(): Promise<void> {
  await promisify(execFile)(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: repoRoot,
  });
}

export async function startOperatorProcess(options: OperatorProcessOptions): Promise<OperatorProcess> {
  const record = startProcess({
    name: options.name,
    bin: process.execPath,
    args: [...options.nodeArgs, path.join(repoRoot, ENTRIES[options.entry].file), ...ENTRIES[options.entry].args, ...options.args],
    runDir: options.runDir,
    cwd: repoRoot,
    env: {
      ...options.env,
      // The chart's default (values.yaml mallocArenaMax); BENCH_MALLOC_ARENA_MAX= (empty) for glibc's.
      ...(options.mallocArenas ? { MALLOC_ARENA_MAX: options.mallocArenas } : {}),
    },
  });
  let port: string | undefined;
  await waitUntil(
    `the metrics port of ${options.name}`,
    () => (port = /"port":(\d+)/.exec(readFileSync(record.logFile, 'utf8'))?.[1]) !== undefined,
    60_000,
  );
  return { record, port: port as string };
}

export const CLK_TCK = 100;

/** CPU time (user + system) the process has used, in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15)
}

export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

export async function metricsText(port: string | undefined): Promise<string> {
  return port ? (await fetch(`http://127.0.0.1:${port}/metrics`)).text() : '';
}

export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** A counter summed per value of one label. */
export function metricBy(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? '';
    out.set(value, (out.get(value) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

export const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
