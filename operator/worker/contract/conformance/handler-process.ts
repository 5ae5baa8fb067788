// The handler under test as a child process: started from a command line with SPO_HANDLER_PORT
// set to a free loopback port, waited for until GET /contract/v1/ready answers 200, and
// stopped by its own pid (SIGTERM, a bounded wait, SIGKILL). `crash` ends it; the suite starts it again.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { freePort } from '../../../../e2e/harness/ports.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RawAnswer {
  status: number;
  text: string;
  json: unknown;
}

/** One request to the handler on a fresh connection; rejects when the connection breaks or the timeout passes. */
export function request(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`)),
      options.timeoutMs ?? 10_000,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(payload);
  });
}

export class HandlerProcess {
  readonly command: string[];
  port = 0;
  private child: ChildProcess | undefined;
  private exit: Promise<number | null> | undefined;
  private output = '';

  constructor(command: string[]) {
    if (command.length === 0) throw new Error('no handler command given');
    this.command = command;
  }

  /** The last lines the handler printed (for a failure report). */
  get tail(): string {
    return this.output.slice(-2_000);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(readyTimeoutMs = 60_000): Promise<void> {
    this.port = await freePort();
    // One word with spaces is a shell command line; `exec` keeps the handler's own pid.
    const [bin, args] =
      this.command.length === 1 && /\s/.test(this.command[0] ?? '')
        ? ['/bin/sh', ['-c', `exec ${this.command[0]}`]]
        : [this.command[0] as string, this.command.slice(1)];
    const child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SPO_HANDLER_PORT: String(this.port), SPO_POOL: 'conformance', SPO_WORKER_NAME: 'conformance-0' },
    });
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString('utf8')).slice(-8_000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`the handler exited before it was ready (status ${child.exitCode}):\n${this.tail}`);
      const answer = await request(this.port, 'GET', '/contract/v1/ready', undefined, { timeoutMs: 2_000 }).catch(() => undefined);
      if (answer?.status === 200) return;
      if (Date.now() > deadline) throw new Error(`the handler was not ready within ${readyTimeoutMs} ms:\n${this.tail}`);
      await sleep(100);
    }
  }

  /** Resolves with the exit status, or 'running' when it has not exited within timeoutMs. */
  async exited(timeoutMs: number): Promise<number | null | 'running'> {
    if (!this.exit) return null;
    return Promise.race([this.exit, sleep(timeoutMs).then(() => 'running' as const)]);
  }

  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running || child.pid === undefined) return;
    child.kill('SIGTERM');
    if ((await this.exited(graceMs)) === 'running') {
      child.kill('SIGKILL');
      await this.exited(5_000);
    }
  }
}
