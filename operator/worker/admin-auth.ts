// Who may call the worker's /admin/* routes: whoever sends `Authorization: Bearer <token>` with
// the pool's admin token (SPO_ADMIN_TOKEN, from the Secret the operator creates per pool).
// A worker without a token refuses every admin call: admin is never open by default.
// Tokens are compared in constant time over their SHA-256 digests, so neither the content nor
// the length of the configured token leaks through the answer's timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import { WorkerError } from './errors.ts';

/** Shortest SPO_ADMIN_TOKEN a worker accepts (the operator's tokens are 32 random bytes, 64 hex). */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header; undefined when absent or of another scheme. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  return match?.[1];
}

/** True when `presented` equals `expected`, in time independent of both. */
export function tokensEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * Throws unless the request may use the admin routes:
 * 401 UNAUTHORIZED when no bearer token is sent, 403 FORBIDDEN when it is wrong or when this
 * worker has no admin token configured (admin disabled).
 */
export function checkAdminAuthorization(configuredToken: string | undefined, authorization: string | undefined): void {
  if (!configuredToken) throw new WorkerError('FORBIDDEN', 'admin routes are disabled on this worker: no SPO_ADMIN_TOKEN is configured');
  const presented = bearerToken(authorization);
  if (presented === undefined) throw new WorkerError('UNAUTHORIZED', 'admin routes need Authorization: Bearer <admin token>');
  if (!tokensEqual(presented, configuredToken)) throw new WorkerError('FORBIDDEN', 'the admin token is wrong');
}
