// The checks of the conformance suite: what any handler of the contract must do
// (docs/handler-contract.md), asked of the handler directly over HTTP, as the runtime would.
// Each check throws an Error saying what was wrong; none depends on how fast the machine is.
import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { HandlerProcess, RawAnswer } from './handler-process.ts';
import { request } from './handler-process.ts';

export interface Check {
  name: string;
  run(handler: HandlerProcess): Promise<void>;
}

const CONFORMANCE_HANDLERS = ['crash', 'echo', 'fail', 'grow', 'put', 'sleep'];
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function expectThat(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const show = (a: RawAnswer) => `${a.status} ${a.text.slice(0, 300)}`;

let requestCount = 0;

function invokeBody(handler: string, args: unknown, data: Record<string, unknown> = {}, session = 'conformance-session-0000001'): string {
  requestCount++;
  return JSON.stringify({
    contract: 1,
    requestId: `conformance-${requestCount}`,
    handler,
    args,
    session: { id: session, version: 3, anonymous: false, data },
    deadlineMs: 10_000,
  });
}

function invoke(h: HandlerProcess, handler: string, args: unknown, data?: Record<string, unknown>, timeoutMs = 10_000): Promise<RawAnswer> {
  return request(h.port, 'POST', '/contract/v1/invoke', invokeBody(handler, args, data), {
    timeoutMs,
    headers: { 'x-spo-request-id': `conformance-${requestCount}`, 'x-spo-deadline-ms': String(timeoutMs) },
  });
}

function expectError(a: RawAnswer, status: number, code?: string): { code: string; message: string; details?: unknown } {
  expectThat(a.status === status, `expected ${status}, got ${show(a)}`);
  const error = isObject(a.json) ? a.json.error : undefined;
  expectThat(
    isObject(error) && typeof error.code === 'string' && typeof error.message === 'string',
    `expected a body {"error": {"code", "message"}}, got ${show(a)}`,
  );
  if (code !== undefined) expectThat(error.code === code, `expected error code ${code}, got ${String(error.code)}`);
  return error as { code: string; message: string; details?: unknown };
}

function expectSuccess(a: RawAnswer): { result: unknown; data?: unknown; hasData: boolean } {
  expectThat(a.status === 200, `expected 200, got ${show(a)}`);
  expectThat(isObject(a.json) && 'result' in a.json, `expected a JSON object with a 'result' key, got ${show(a)}`);
  const body = a.json;
  return { result: body.result, data: body.data, hasData: 'data' in body };
}

/** "data unchanged": no data key, or the same data back. */
function expectUnchanged(s: { data?: unknown; hasData: boolean }, before: Record<string, unknown>): void {
  expectThat(!s.hasData || isDeepStrictEqual(s.data, before), `expected the data unchanged, got data ${JSON.stringify(s.data)}`);
}

async function expectStillServing(h: HandlerProcess, after: string): Promise<void> {
  const ready = await request(h.port, 'GET', '/contract/v1/ready', undefined, { timeoutMs: 5_000 }).catch((e: unknown) => {
    throw new Error(`the handler stopped answering after ${after}: ${String(e)}`);
  });
  expectThat(ready.status === 200, `the handler is no longer ready after ${after}: ${show(ready)}`);
  const echo = expectSuccess(await invoke(h, 'echo', { after }));
  expectThat(isDeepStrictEqual(echo.result, { after }), `echo after ${after} answered ${JSON.stringify(echo.result)}`);
}

/** Sends raw bytes on one connection; resolves with what came back (possibly nothing) when it closes. */
function rawExchange(port: number, bytes: string, closeAfterMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(received));
    socket.on('connect', () => socket.write(bytes, 'latin1'));
    setTimeout(() => socket.destroy(), closeAfterMs);
  });
}

const MALFORMED_BODIES: [string, string | Buffer][] = [
  ['not JSON', '{"contract": 1, "handler": '],
  ['an empty body', ''],
  ['a JSON array', '[1, 2, 3]'],
  ['a JSON string', '"invoke"'],
  ['an object without a session', JSON.stringify({ contract: 1, requestId: 'r', handler: 'echo', args: null, deadlineMs: 1000 })],
  [
    'session.data not an object',
    JSON.stringify({
      contract: 1,
      requestId: 'r',
      handler: 'echo',
      args: null,
      session: { id: 's', version: 1, anonymous: false, data: [1] },
    }),
  ],
  [
    'handler not a string',
    JSON.stringify({ contract: 1, requestId: 'r', handler: 7, args: null, session: { id: 's', version: 1, anonymous: false, data: {} } }),
  ],
  ['bytes that are not UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
];

export const CHECKS: Check[] = [
  {
    name: 'GET /contract/v1/ready answers 200 {ready: true, contract: 1} and lists the conformance handlers',
    async run(h) {
      const a = await request(h.port, 'GET', '/contract/v1/ready');
      expectThat(a.status === 200, `expected 200, got ${show(a)}`);
      expectThat(isObject(a.json) && a.json.ready === true && a.json.contract === 1, `expected {ready: true, contract: 1}, got ${show(a)}`);
      const handlers = a.json.handlers;
      expectThat(Array.isArray(handlers), `expected a 'handlers' list, got ${show(a)}`);
      for (const entry of handlers)
        expectThat(
          isObject(entry) && typeof entry.name === 'string' && typeof entry.description === 'string',
          `each handler is {name, description}; got ${JSON.stringify(entry)}`,
        );
      const names = new Set(handlers.map((entry) => (entry as { name: string }).name));
      const missing = CONFORMANCE_HANDLERS.filter((n) => !names.has(n));
      expectThat(missing.length === 0, `the conformance handlers ${missing.join(', ')} are not listed`);
    },
  },
  {
    name: 'echo: result = args, data unchanged (empty data, no data key needed)',
    async run(h) {
      const args = { text: 'héllo ✓', n: [1, 2.5, null, true], nested: { a: {} } };
      const s = expectSuccess(await invoke(h, 'echo', args, {}));
      expectThat(isDeepStrictEqual(s.result, args), `echo answered ${JSON.stringify(s.result)}`);
      expectUnchanged(s, {});
      const none = expectSuccess(await invoke(h, 'echo', null, { keep: 1 }));
      expectThat(none.result === null, `echo of null args answered ${JSON.stringify(none.result)}`);
      expectUnchanged(none, { keep: 1 });
    },
  },
  {
    name: 'put: returns the whole new data and the previous value',
    async run(h) {
      const data = { kept: { deep: [1, 2] }, k: 'old' };
      const s = expectSuccess(await invoke(h, 'put', { key: 'k', value: { v: 2 } }, data));
      expectThat(isDeepStrictEqual(s.result, { previous: 'old' }), `put answered result ${JSON.stringify(s.result)}`);
      expectThat(
        isDeepStrictEqual(s.data, { kept: { deep: [1, 2] }, k: { v: 2 } }),
        `put answered data ${JSON.stringify(s.data)} (a whole object replaces the old one)`,
      );
      const fresh = expectSuccess(await invoke(h, 'put', { key: 'new', value: 1 }, {}));
      expectThat(isDeepStrictEqual(fresh.result, { previous: null }), `put of a new key answered ${JSON.stringify(fresh.result)}`);
      expectThat(isDeepStrictEqual(fresh.data, { new: 1 }), `put of a new key answered data ${JSON.stringify(fresh.data)}`);
    },
  },
  {
    name: 'an unknown handler answers 404 UNKNOWN_HANDLER',
    async run(h) {
      expectError(await invoke(h, 'no_such_handler', null), 404, 'UNKNOWN_HANDLER');
    },
  },
  {
    name: 'args that do not fit answer 400 INVALID_ARGS',
    async run(h) {
      expectError(await invoke(h, 'put', 'not an object'), 400, 'INVALID_ARGS');
      expectError(await invoke(h, 'sleep', { ms: 'soon' }), 400, 'INVALID_ARGS');
    },
  },
  {
    name: 'fail answers 422 with the code and message given',
    async run(h) {
      const e = expectError(await invoke(h, 'fail', { code: 'PROGRAM_NOT_FOUND', message: 'no program "qa" here' }), 422);
      expectThat(e.code === 'PROGRAM_NOT_FOUND', `expected code PROGRAM_NOT_FOUND, got ${e.code}`);
      expectThat(e.message === 'no program "qa" here', `expected the message passed through, got ${JSON.stringify(e.message)}`);
    },
  },
  {
    name: 'sleep answers after the time asked; a caller that gives up at its deadline leaves the handler serving',
    async run(h) {
      const started = Date.now();
      const s = expectSuccess(await invoke(h, 'sleep', { ms: 150 }));
      expectThat(isDeepStrictEqual(s.result, { slept: 150 }), `sleep answered ${JSON.stringify(s.result)}`);
      expectThat(Date.now() - started >= 150, 'sleep answered before the time asked');
      const gaveUp = await invoke(h, 'sleep', { ms: 1_500 }, {}, 200).then(
        (a) => `answered ${show(a)}`,
        () => 'gave up',
      );
      expectThat(gaveUp === 'gave up', `a 1500 ms sleep ${gaveUp} before a 200 ms deadline`);
      await expectStillServing(h, 'a caller closed its connection at the deadline');
    },
  },
  {
    name: 'serves concurrent requests: an echo answers while a sleep is in flight; 16 puts at once all answer',
    async run(h) {
      let sleepDone = false;
      const sleeping = invoke(h, 'sleep', { ms: 1_500 }).then((a) => {
        sleepDone = true;
        return a;
      });
      const echo = expectSuccess(await invoke(h, 'echo', 'while sleeping'));
      expectThat(echo.result === 'while sleeping', `echo answered ${JSON.stringify(echo.result)}`);
      expectThat(!sleepDone, 'the echo waited for the sleep: requests are served one at a time');
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => invoke(h, 'put', { key: `k${i}`, value: i }, { i })));
      answers.forEach((a, i) => {
        const s = expectSuccess(a);
        expectThat(isDeepStrictEqual(s.data, { i, [`k${i}`]: i }), `concurrent put ${i} answered data ${JSON.stringify(s.data)}`);
      });
      expectSuccess(await sleeping);
    },
  },
  {
    name: 'grow returns data of the size asked (2 MiB; the runtime, not the handler, enforces the pool limit)',
    async run(h) {
      const bytes = 2 * 1024 * 1024;
      const s = expectSuccess(await invoke(h, 'grow', { bytes }, { keep: true }, 30_000));
      expectThat(isDeepStrictEqual(s.result, { bytes }), `grow answered ${JSON.stringify(s.result)}`);
      const data = s.data as Record<string, unknown> | undefined;
      expectThat(
        typeof data?.blob === 'string' && data.blob.length === bytes && /^x+$/.test(data.blob) && data.keep === true,
        'grow did not return data.blob of that many x beside the other keys',
      );
    },
  },
  ...MALFORMED_BODIES.map(([what, body]): Check => ({
    name: `a request body that is ${what} answers 400 (and the handler keeps serving)`,
    async run(h) {
      const a = await request(h.port, 'POST', '/contract/v1/invoke', body, { timeoutMs: 5_000 });
      expectThat(a.status === 400, `expected 400, got ${show(a)}`);
      await expectStillServing(h, `a body that is ${what}`);
    },
  })),
  {
    name: 'a request cut off in its body, and a request with a huge declared length, do not bring the handler down',
    async run(h) {
      await rawExchange(
        h.port,
        'POST /contract/v1/invoke HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"contract": 1',
        300,
      );
      const huge = await rawExchange(
        h.port,
        'POST /contract/v1/invoke HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 99999999999\r\n\r\n{}',
        1_000,
      );
      expectThat(!/^HTTP\/1\.[01] 2/.test(huge), `a body declared at 99999999999 bytes was answered ${huge.slice(0, 60)}`);
      await expectStillServing(h, 'a cut-off request and a huge declared length');
    },
  },
  {
    name: 'crash ends the process at once with status 1, without an answer',
    async run(h) {
      const answer = await invoke(h, 'crash', null, {}, 10_000).then(
        (a) => `answered ${show(a)}`,
        () => 'no answer',
      );
      expectThat(answer === 'no answer', `crash ${answer}`);
      const status = await h.exited(10_000);
      expectThat(status === 1, `expected the process to exit with status 1, got ${String(status)}`);
    },
  },
];
