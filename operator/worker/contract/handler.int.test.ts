// A real worker process (`node operator/cmd/worker.ts`) with SPO_HANDLER_PORT, the raw Python
// handler beside it (as the handler container of a pod), and the real Redis Cluster. Sessions
// run through the handler; every fault of the contract's table gives its typed error, leaves
// the session as it was (same version, same data), leaves the worker up, and is counted.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../../e2e/harness/paths.ts';
import { freePort } from '../../../e2e/harness/ports.ts';
import { waitFor } from '../../../e2e/harness/processes.ts';
import { redisTestEnv } from '../../../e2e/harness/test-env.ts';

const NODE = path.join(repoRoot, 'node_modules/.bin/node');
const RAW_HANDLER = path.join(repoRoot, 'operator/worker/contract/conformance/raw_python_handler.py');
const pool = `hc-int-${Date.now().toString(36)}`;
const dir = path.join(tmpdir(), `spo-${pool}`);
const notReadyFile = path.join(dir, 'not-ready');
const MAX_SESSION_BYTES = 65_536;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function start(name: string, bin: string, args: string[], env: Record<string, string>): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(path.join(dir, `${name}.log`), 'a');
  const child = spawn(bin, args, { cwd: repoRoot, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  if ((await Promise.race([exited, sleep(10_000).then(() => 'timeout')])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | null;
}

describe('worker with an external handler (raw Python) on the Redis Cluster', function () {
  this.timeout(120_000);
  let workerPort: number;
  let handlerPort: number;
  let worker: ChildProcess;
  let handler: ChildProcess | undefined;

  const url = (p: string) => `http://127.0.0.1:${workerPort}${p}`;
  async function call(method: string, p: string, body?: unknown): Promise<Answer> {
    const r = await fetch(url(p), {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown>, retryAfter: r.headers.get('retry-after') };
  }
  const execute = (id: string, handlerName: string, args: unknown) =>
    call('POST', `/v1/sessions/${id}/execute`, { handler: handlerName, args });
  const session = async (id: string) => (await call('GET', `/v1/sessions/${id}`)).body.session as { version: number; data: unknown };
  const readyz = async () => (await fetch(url('/readyz'))).status;
  async function failures(reason: string): Promise<number> {
    const text = await (await fetch(url('/metrics'))).text();
    const match = new RegExp(`^spo_worker_handler_failures_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  }

  function startHandler(): void {
    handler = start('handler', 'python3', [RAW_HANDLER], { SPO_HANDLER_PORT: String(handlerPort), SPO_RAW_NOT_READY_FILE: notReadyFile });
  }

  before(async () => {
    workerPort = await freePort();
    handlerPort = await freePort();
    startHandler();
    worker = start('worker', NODE, ['operator/cmd/worker.ts'], {
      SPO_POOL: pool,
      SPO_POOL_NAMESPACE: 'default',
      SPO_WORKER_NAME: 'w1',
      SPO_HOST: '127.0.0.1',
      SPO_PORT: String(workerPort),
      SPO_REDIS_NODES: redisTestEnv().endpoints.join(','),
      SPO_HANDLER_PORT: String(handlerPort),
      SPO_HANDLER_TIMEOUT_MS: '1500',
      SPO_MAX_SESSION_BYTES: String(MAX_SESSION_BYTES),
      SPO_LOG_LEVEL: 'warn',
    });
    await waitFor(
      'the worker ready with its handler',
      async () => ((await readyz().catch(() => 0)) === 200 ? true : undefined),
      30_000,
      100,
    );
  });

  after(async () => {
    await stop(worker);
    await stop(handler);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a fault; the session must be unchanged, the worker up, and the reason counted once. */
  async function fault(id: string, reason: string, run: () => Promise<Answer>): Promise<Answer> {
    const before = await session(id);
    const counted = await failures(reason);
    const answer = await run();
    expect(await session(id)).to.deep.include({ version: before.version, data: before.data });
    expect(worker.exitCode).to.equal(null);
    expect((await fetch(url('/healthz'))).status).to.equal(200);
    expect(await failures(reason)).to.equal(counted + 1);
    return answer;
  }

  it('lists the handler container’s handlers on /v1/handlers', async () => {
    const { status, body } = await call('GET', '/v1/handlers');
    expect(status).to.equal(200);
    expect((body.handlers as { name: string }[]).map((h) => h.name)).to.include.members(['crash', 'echo', 'fail', 'grow', 'put', 'sleep']);
  });

  it('executes through the handler: new data is written with a new version; no data keeps the version', async () => {
    const created = await call('POST', '/v1/sessions', { data: { a: 1 } });
    const id = (created.body.session as { id: string }).id;
    const put = await execute(id, 'put', { key: 'b', value: [1, 2] });
    expect(put.status).to.equal(200);
    expect(put.body).to.deep.include({ sessionId: id, version: 2, result: { previous: null } });
    expect(await session(id)).to.deep.include({ version: 2, data: { a: 1, b: [1, 2] } });
    const echo = await execute(id, 'echo', { hi: 'there' });
    expect(echo.body).to.deep.include({ version: 2, result: { hi: 'there' } });
    const anonymous = await call('POST', '/v1/execute', { handler: 'put', args: { key: 'k', value: 1 }, data: { k: 0 } });
    expect(anonymous.status).to.equal(200);
    expect(anonymous.body.result).to.deep.equal({ previous: 0 });
  });

  it('every fault of the table: typed error, session unchanged, worker up, counted', async () => {
    const id = ((await call('POST', '/v1/sessions', { data: { keep: 'me' } })).body.session as { id: string }).id;
    expect((await execute(id, 'put', { key: 'n', value: 1 })).status).to.equal(200);

    const unknown = await fault(id, 'unknown_handler', () => execute(id, 'nope', null));
    expect([unknown.status, (unknown.body.error as { code: string }).code]).to.deep.equal([400, 'UNKNOWN_HANDLER']);

    const invalid = await fault(id, 'invalid_args', () => execute(id, 'put', 'not an object'));
    expect(invalid.body.error).to.deep.include({ code: 'INVALID_ARGS', message: 'put needs {key: string, value: any}' });
    expect(invalid.status).to.equal(400);

    const failed = await fault(id, 'handler_error', () => execute(id, 'fail', { code: 'NO_PROGRAM', message: 'define qa first' }));
    expect(failed.status).to.equal(422);
    expect(failed.body.error).to.deep.equal({ code: 'HANDLER_ERROR', message: 'define qa first', details: { code: 'NO_PROGRAM' } });

    const hang = await fault(id, 'timeout', () => execute(id, 'sleep', { ms: 5_000 }));
    expect([hang.status, (hang.body.error as { code: string }).code]).to.deep.equal([504, 'HANDLER_TIMEOUT']);

    const garbled = await fault(id, 'bad_response', () => execute(id, 'not_json', null));
    expect([garbled.status, (garbled.body.error as { code: string }).code]).to.deep.equal([502, 'HANDLER_BAD_RESPONSE']);

    const large = await fault(id, 'too_large', () => execute(id, 'grow', { bytes: MAX_SESSION_BYTES + 1 }));
    expect([large.status, (large.body.error as { code: string }).code]).to.deep.equal([413, 'SESSION_TOO_LARGE']);

    // Not ready: /readyz follows the handler's readiness, execute is refused (retryable).
    writeFileSync(notReadyFile, '');
    await waitFor('the worker unready', async () => ((await readyz()) === 503 ? true : undefined), 10_000, 50);
    const notReady = await fault(id, 'unavailable', () => execute(id, 'put', { key: 'n', value: 2 }));
    expect([notReady.status, (notReady.body.error as { code: string }).code, notReady.retryAfter]).to.deep.equal([
      503,
      'HANDLER_UNAVAILABLE',
      '1',
    ]);
    rmSync(notReadyFile);
    await waitFor('the worker ready again', async () => ((await readyz()) === 200 ? true : undefined), 10_000, 50);

    // Crash: the connection breaks (502), then the handler is down (503, unready) until it is restarted.
    const crashed = await fault(id, 'failed', () => execute(id, 'crash', null));
    expect([crashed.status, (crashed.body.error as { code: string }).code]).to.deep.equal([502, 'HANDLER_FAILED']);
    const down = await fault(id, 'unavailable', () => execute(id, 'echo', null));
    expect([down.status, (down.body.error as { code: string }).code]).to.deep.equal([503, 'HANDLER_UNAVAILABLE']);
    expect(await readyz()).to.equal(503);
    startHandler();
    await waitFor('the worker ready after the handler restarted', async () => ((await readyz()) === 200 ? true : undefined), 20_000, 50);
    const after = await execute(id, 'put', { key: 'n', value: 3 });
    expect(after.body).to.deep.include({ version: 3, result: { previous: 1 } });
    expect((await session(id)).data).to.deep.equal({ keep: 'me', n: 3 });
  });
});
