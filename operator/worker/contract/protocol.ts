// The handler contract, version 1 (docs/handler-contract.md), as pure functions: the request the
// runtime sends, and what each answer of the handler means for the client. No I/O here, so
// the whole error table is unit-tested in protocol.test.ts.
import type { JsonValue } from '../../store/types.ts';
import { WorkerError, type WorkerErrorCode } from '../errors.ts';
import type { JsonObject } from '../handlers.ts';

export const CONTRACT_VERSION = 1;
export const READY_PATH = '/contract/v1/ready';
export const INVOKE_PATH = '/contract/v1/invoke';
/** A request may carry the session plus this much for the envelope and args. */
export const REQUEST_ENVELOPE_BYTES = 64 * 1024;
/** An answer may carry the new session plus this much for the result. */
export const RESPONSE_ENVELOPE_BYTES = 1024 * 1024;

export const HANDLER_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const HANDLER_ERROR_CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Why a handler call failed: the label of spo_worker_handler_failures_total. */
export type FailureReason =
  'unknown_handler' | 'invalid_args' | 'handler_error' | 'failed' | 'timeout' | 'unavailable' | 'bad_response' | 'too_large';

export const FAILURE_REASONS: readonly FailureReason[] = [
  'unknown_handler',
  'invalid_args',
  'handler_error',
  'failed',
  'timeout',
  'unavailable',
  'bad_response',
  'too_large',
];

export interface InvokeRequest {
  contract: typeof CONTRACT_VERSION;
  requestId: string;
  handler: string;
  args: JsonValue;
  session: { id: string; version: number; anonymous: boolean; data: JsonObject };
  deadlineMs: number;
}

export interface HandlerInfo {
  name: string;
  description: string;
}

/** What the handler answered on success: the new data, or none (unchanged). */
export interface InvokeSuccess {
  result: JsonValue;
  data?: JsonObject;
}

const CODES: Record<FailureReason, WorkerErrorCode> = {
  unknown_handler: 'UNKNOWN_HANDLER',
  invalid_args: 'INVALID_ARGS',
  handler_error: 'HANDLER_ERROR',
  failed: 'HANDLER_FAILED',
  timeout: 'HANDLER_TIMEOUT',
  unavailable: 'HANDLER_UNAVAILABLE',
  bad_response: 'HANDLER_BAD_RESPONSE',
  too_large: 'SESSION_TOO_LARGE',
};

/** A WorkerError that also says which failure of the handler it was (for the metric). */
export class HandlerCallError extends WorkerError {
  readonly reason: FailureReason;
  constructor(reason: FailureReason, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(CODES[reason], message, options);
    this.reason = reason;
  }
}

export function failure(reason: FailureReason, message: string, options: { details?: unknown; cause?: unknown } = {}): HandlerCallError {
  return new HandlerCallError(reason, message, options);
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** The handler's `{error: {code, message, details?}}`, or undefined when the body is not that shape. */
function errorBody(value: unknown): { code: string; message: string; details: JsonValue | undefined } | undefined {
  if (!isObject(value) || !isObject(value.error)) return undefined;
  const { code, message, details } = value.error;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  return { code, message, details: details as JsonValue | undefined };
}

/**
 * What an answer of the handler to an invoke means: the success, or the typed error the
 * client gets (the contract's table). Messages of the handler reach the client only for
 * INVALID_ARGS and HANDLER_ERROR; the size of `data` is checked against maxSessionBytes.
 */
export function interpretInvoke(
  status: number,
  body: string,
  request: { handler: string; maxSessionBytes: number },
): InvokeSuccess | HandlerCallError {
  const { handler } = request;
  if (status >= 500) return failure('failed', `handler '${handler}' failed (the handler answered ${status})`);
  const parsed = parseJson(body);
  if (!parsed.ok) return failure('bad_response', `handler '${handler}' answered ${status} with a body that is not JSON`);
  if (status === 200) {
    const value = parsed.value;
    if (!isObject(value) || !('result' in value))
      return failure('bad_response', `handler '${handler}' answered 200 without a 'result' key`);
    if ('data' in value) {
      if (!isObject(value.data)) return failure('bad_response', `handler '${handler}' answered 'data' that is not a JSON object`);
      const bytes = Buffer.byteLength(JSON.stringify(value.data));
      if (bytes > request.maxSessionBytes)
        return failure(
          'too_large',
          `handler '${handler}' returned session data of ${bytes} bytes, over the limit of ${request.maxSessionBytes}`,
        );
      return { result: value.result as JsonValue, data: value.data as JsonObject };
    }
    return { result: value.result as JsonValue };
  }
  const error = errorBody(parsed.value);
  if (error) {
    if (status === 404 && error.code === 'UNKNOWN_HANDLER') return failure('unknown_handler', `unknown handler '${handler}'`);
    if (status === 400 && error.code === 'INVALID_ARGS') return failure('invalid_args', error.message);
    if (status === 422 && HANDLER_ERROR_CODE_PATTERN.test(error.code)) {
      return failure('handler_error', error.message, {
        details: { code: error.code, ...(error.details === undefined ? {} : { details: error.details }) },
      });
    }
  }
  return failure('bad_response', `handler '${handler}' answered ${status} with a body that is not the contract's error shape`);
}

export interface Readiness {
  ready: boolean;
  reason: string;
  handlers: HandlerInfo[];
}

/** What GET /contract/v1/ready answered: ready only on 200 with `ready: true` and contract 1. */
export function interpretReady(status: number, body: string): Readiness {
  const parsed = parseJson(body);
  const value = parsed.ok && isObject(parsed.value) ? parsed.value : undefined;
  if (status !== 200) {
    const reason = typeof value?.reason === 'string' ? value.reason.slice(0, 200) : `answered ${status}`;
    return { ready: false, reason: `handler not ready: ${reason}`, handlers: [] };
  }
  if (!value || value.ready !== true) return { ready: false, reason: 'handler answered 200 without ready: true', handlers: [] };
  if (value.contract !== CONTRACT_VERSION)
    return {
      ready: false,
      reason: `handler speaks contract ${JSON.stringify(value.contract)}, the runtime ${CONTRACT_VERSION}`,
      handlers: [],
    };
  const handlers: HandlerInfo[] = [];
  if (Array.isArray(value.handlers)) {
    for (const h of value.handlers) {
      if (isObject(h) && typeof h.name === 'string' && HANDLER_NAME_PATTERN.test(h.name))
        handlers.push({ name: h.name, description: typeof h.description === 'string' ? h.description : '' });
    }
  }
  handlers.sort((a, b) => a.name.localeCompare(b.name));
  return { ready: true, reason: 'ok', handlers };
}
