// What the counting handler (e2e/handlers/counting_handler.py) wrote: one line per invocation of
// `put`, "<session id> <args.key> <handler pid>", in the file its pool's SPO_COUNT_FILE names. Tests
// compare these counts, taken outside the store, with the requests they got answers for.
import { existsSync, readFileSync } from 'node:fs';

export interface Invocations {
  /** Invocations per session. */
  bySession: Map<string, number>;
  /** The handler process of each invocation of a request, keyed `<session id> <args.key>` (requestKey). */
  byRequest: Map<string, number[]>;
  total: number;
  /** The requests (requestKey) in the order they were invoked. */
  order: string[];
}

export function readInvocations(file: string): Invocations {
  const counts: Invocations = { bySession: new Map(), byRequest: new Map(), total: 0, order: [] };
  if (!existsSync(file)) return counts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const [session = '', key = '', pid = '0'] = line.split(' ');
    const request = requestKey(session, key);
    counts.bySession.set(session, (counts.bySession.get(session) ?? 0) + 1);
    counts.byRequest.set(request, [...(counts.byRequest.get(request) ?? []), Number(pid)]);
    counts.order.push(request);
    counts.total += 1;
  }
  return counts;
}

/** The `byRequest` key of a request: its session and the `key` argument of its `put`. */
export const requestKey = (session: string, key: string): string => `${session} ${key}`;

/** How many invocations of the same session ran between the first two invocations of a request. */
export function invocationsBetween(counts: Invocations, request: string): number {
  const session = request.split(' ')[0]!;
  const first = counts.order.indexOf(request);
  const second = counts.order.indexOf(request, first + 1);
  return counts.order.slice(first + 1, second < 0 ? first + 1 : second).filter((r) => r.startsWith(`${session} `)).length;
}
