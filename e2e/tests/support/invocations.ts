// What the counting handler (e2e/handlers/counting_handler.py) wrote: one line per invocation of
// `put`, "<session id> <args.key>", in the file its pool's SPO_COUNT_FILE names. Tests compare these
// counts, taken outside the store, with the requests they got answers for.
import { existsSync, readFileSync } from 'node:fs';

export interface Invocations {
  /** Invocations per session. */
  bySession: Map<string, number>;
  /** Invocations per request, keyed `<session id> <args.key>`. */
  byRequest: Map<string, number>;
  total: number;
  /** The lines in the order written. */
  lines: string[];
}

export function readInvocations(file: string): Invocations {
  const counts: Invocations = { bySession: new Map(), byRequest: new Map(), total: 0, lines: [] };
  if (!existsSync(file)) return counts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const session = line.split(' ')[0]!;
    counts.bySession.set(session, (counts.bySession.get(session) ?? 0) + 1);
    counts.byRequest.set(line, (counts.byRequest.get(line) ?? 0) + 1);
    counts.total += 1;
    counts.lines.push(line);
  }
  return counts;
}

/** The `byRequest` key of a request: its session and the `key` argument of its `put`. */
export const requestKey = (session: string, key: string): string => `${session} ${key}`;

/** How many invocations of the same session ran between the first two invocations of a request. */
export function invocationsBetween(counts: Invocations, request: string): number {
  const session = request.split(' ')[0]!;
  const first = counts.lines.indexOf(request);
  const second = counts.lines.indexOf(request, first + 1);
  return counts.lines.slice(first + 1, second < 0 ? first + 1 : second).filter((l) => l.startsWith(`${session} `)).length;
}
