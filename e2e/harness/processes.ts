// Starting and stopping the environment's processes. Each started process is recorded in a
// pid file (the pid of the program itself, with its binary), and only recorded processes are
// ever signalled: never kill by name.
import { spawn, execFile } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface ProcessRecord {
  name: string;
  pid: number;
  bin: string;
  args: string[];
  logFile: string;
  cwd: string;
  startedAt: string;
}

export interface StartOptions {
  name: string;
  bin: string;
  args: string[];
  runDir: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

function pidFile(runDir: string, name: string): string {
  return path.join(runDir, 'pids', `${name}.json`);
}

/** Starts a program in its own process group (so Ctrl-C reaches only us, and we stop in order). */
export function startProcess(options: StartOptions): ProcessRecord {
  const logDir = path.join(options.runDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(path.join(options.runDir, 'pids'), { recursive: true });
  const logFile = path.join(logDir, `${options.name}.log`);
  const fd = openSync(logFile, 'a');
  const cwd = options.cwd ?? options.runDir;
  const child = spawn(options.bin, options.args, {
    cwd,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: options.env ?? process.env,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${options.name} (${options.bin})`);
  child.unref();
  child.on('error', () => undefined);
  const record: ProcessRecord = {
    name: options.name,
    pid: child.pid,
    bin: options.bin,
    args: options.args,
    logFile,
    cwd,
    startedAt: new Date().toISOString(),
  };
  writeFileSync(pidFile(options.runDir, options.name), JSON.stringify(record, null, 2));
  return record;
}

export function readProcessRecord(runDir: string, name: string): ProcessRecord | undefined {
  const file = pidFile(runDir, name);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ProcessRecord;
}

export function listProcessRecords(runDir: string): ProcessRecord[] {
  const dir = path.join(runDir, 'pids');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as ProcessRecord);
}

/** True while the recorded process runs (not a zombie) and is still the binary we started. */
export function isRunning(record: Pick<ProcessRecord, 'pid' | 'bin'>): boolean {
  try {
    const stat = readFileSync(`/proc/${record.pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    // The executable, not argv[0]: programs such as redis-server rewrite their title.
    const exe = readlinkSync(`/proc/${record.pid}/exe`).replace(/ \(deleted\)$/, '');
    return exe === realpathSync(record.bin);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitForExit(record: Pick<ProcessRecord, 'pid' | 'bin'>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(record)) return true;
    await sleep(50);
  }
  return !isRunning(record);
}

/** SIGTERM, a bounded wait, then SIGKILL. Only ever signals a process that is still ours. */
export async function stopProcess(record: ProcessRecord, graceMs = 10_000): Promise<void> {
  if (isRunning(record)) {
    try {
      process.kill(record.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    if (!(await waitForExit(record, graceMs)) && isRunning(record)) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await waitForExit(record, 5_000);
    }
  }
}

export async function stopRecorded(runDir: string, name: string, graceMs?: number): Promise<void> {
  const record = readProcessRecord(runDir, name);
  if (record) {
    await stopProcess(record, graceMs);
    rmSync(pidFile(runDir, name), { force: true });
  }
}

/** Runs a command to completion; the error names the command and carries its output. */
export async function run(
  bin: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(bin, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`, { cause: error });
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
}

/** Stops every process recorded in a run directory, in the order given first, then the rest. */
export async function stopAllRecorded(runDir: string, order: string[] = []): Promise<void> {
  const records = listProcessRecords(runDir);
  const rank = (name: string) => {
    const i = order.indexOf(name);
    return i === -1 ? order.length : i;
  };
  for (const record of records.sort((a, b) => rank(a.name) - rank(b.name))) await stopRecorded(runDir, record.name);
}
