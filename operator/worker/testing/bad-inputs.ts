// The bad requests of issue 12 that once answered 500, as fixed cases: the in-process unit test
// and the fuzz test against a running worker both send them. `:id` stands for an existing
// session's id (so that a write, if one slipped through, would show in its version).
import { MAX_JSON_DEPTH } from '../validation.ts';

export interface BadInput {
  name: string;
  method: string;
  path: string;
  body?: string;
  status: number;
  code: string;
  /** A part of the message the client must be told. */
  reason: RegExp;
}

const deepArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const deepObjects = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

export const BAD_INPUTS: readonly BadInput[] = [
  {
    name: 'malformed percent-encoding in the session path',
    method: 'GET',
    path: '/v1/sessions/%E0%A4%A',
    status: 400,
    code: 'INVALID_SESSION_ID',
    reason: /percent-encoding/,
  },
  {
    name: 'malformed percent-encoding on execute',
    method: 'POST',
    path: '/v1/sessions/%E0%A4%A/execute',
    body: '{"handler":"incr","args":{"key":"n"}}',
    status: 400,
    code: 'INVALID_SESSION_ID',
    reason: /percent-encoding/,
  },
  {
    name: 'session data nested 20,000 deep',
    method: 'POST',
    path: '/v1/sessions',
    body: `{"data":{"x":${deepArrays(20_000)}}}`,
    status: 400,
    code: 'INVALID_JSON',
    reason: new RegExp(`limit of ${MAX_JSON_DEPTH} levels`),
  },
  {
    name: 'handler args nested 20,000 deep (objects)',
    method: 'POST',
    path: '/v1/sessions/:id/execute',
    body: `{"handler":"set","args":{"key":"k","value":${deepObjects(20_000)}}}`,
    status: 400,
    code: 'INVALID_JSON',
    reason: /deeper than the limit/,
  },
  {
    name: 'a body one level over the depth limit',
    method: 'POST',
    path: '/v1/execute',
    body: `{"handler":"get","args":{"key":"k"},"data":${deepObjects(MAX_JSON_DEPTH)}}`,
    status: 400,
    code: 'INVALID_JSON',
    reason: /deeper than the limit/,
  },
  {
    name: 'a number that parses to Infinity in session data',
    method: 'POST',
    path: '/v1/sessions',
    body: '{"data":{"x":1e999}}',
    status: 400,
    code: 'INVALID_JSON',
    reason: /\/data\/x .*not a finite/,
  },
  {
    name: 'a number that parses to -Infinity in handler args',
    method: 'POST',
    path: '/v1/sessions/:id/execute',
    body: '{"handler":"set","args":{"key":"k","value":[-1e999]}}',
    status: 400,
    code: 'INVALID_JSON',
    reason: /\/args\/value\/0 /,
  },
  {
    name: "a client TTL of 30 days, above the pool's session TTL",
    method: 'POST',
    path: '/v1/sessions',
    body: '{"ttlSeconds":2592000}',
    status: 400,
    code: 'INVALID_REQUEST',
    reason: /ttlSeconds 2592000 is above this pool's maximum of \d+ seconds/,
  },
  {
    name: "an anonymous run's TTL above the pool's session TTL",
    method: 'POST',
    path: '/v1/execute',
    body: '{"handler":"get","args":{"key":"k"},"ttlSeconds":2592000}',
    status: 400,
    code: 'INVALID_REQUEST',
    reason: /above this pool's maximum/,
  },
];

/** Text an error body must never carry: addresses, stack frames, Node's internal error names. */
export const LEAKS: readonly RegExp[] = [
  /\b\d{1,3}(\.\d{1,3}){3}:\d+/,
  /\n\s+at /,
  /\bat .*\.ts:\d+/,
  /ECONN|ETIMEDOUT|TypeError|RangeError/,
];
