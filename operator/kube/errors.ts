// One place that reads HTTP status codes out of client-node errors. Generated API calls throw
// ApiException with `.code`; the watch helper throws an Error with `.statusCode`; a watch
// ERROR event carries a v1 Status with `.code`. Everything else (network errors) has no code.
import { ApiException } from '@kubernetes/client-node';

/** The HTTP status code of a Kubernetes API error, or undefined for non-HTTP errors. */
export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null) {
    const record = err as { code?: unknown; statusCode?: unknown };
    if (typeof record.code === 'number') return record.code;
    if (typeof record.statusCode === 'number') return record.statusCode;
  }
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

export function isConflict(err: unknown): boolean {
  return statusCode(err) === 409;
}

export function isGone(err: unknown): boolean {
  return statusCode(err) === 410;
}

/** A short message for logs: the Status message from the apiserver when there is one. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: unknown };
        if (typeof parsed.message === 'string') return `${err.code}: ${parsed.message}`;
      } catch {
        // not JSON: fall through
      }
    } else if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') {
      return `${err.code}: ${(body as { message: string }).message}`;
    }
    return `HTTP ${err.code}`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
