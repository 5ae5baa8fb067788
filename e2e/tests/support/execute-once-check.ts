// The per-request account of a CountedTraffic run (counted-traffic.ts): what the client saw, how
// often and where the handler ran it (invocations.ts), and whether its write is in the session's
// data. The rules (docs/activation.md, "Execute once"):
// - an acknowledged request's write is in the store, and its handler ran;
// - a request refused with "nothing was applied", or never sent, applied nothing (and a request never
//   sent ran nothing);
// - a plain request (one attempt, no key) ran at most once;
// - a keyed request ran once, plus once more for each invocation lost with a handler process killed
//   mid-run (its write never happened, so the retry must run it: no system can tell that apart);
// - nothing ran or was written that no request sent, and no write applied twice.
import { idempotencyKeyOf, type CountedRequest, type CountedTraffic } from './counted-traffic.ts';
import { invocationsBetween, requestKey, type Invocations } from './invocations.ts';

export interface ExecuteOnceAccount {
  problems: string[];
  keyed: { invocations: number; acked: number; unknown: number; rerunsAfterKill: number };
  plain: { invocations: number; acked: number; unknown: number; unknownRan: number; refused: number; refusedRan: number; notSent: number };
}

export function accountRequests(
  traffic: CountedTraffic,
  invocations: Invocations,
  sessions: Map<string, { data: Record<string, unknown>; version: number }>,
  options: { killedHandlers: ReadonlySet<number>; extraKeys: string[] },
): ExecuteOnceAccount {
  const total = traffic.tally();
  const account: ExecuteOnceAccount = {
    problems: [],
    keyed: { invocations: 0, acked: total.keyed.acked, unknown: total.keyed.unknown, rerunsAfterKill: 0 },
    plain: { invocations: 0, unknownRan: 0, refusedRan: 0, ...total.plain },
  };
  const problems = account.problems;
  const data = new Map([...sessions].map(([id, s]) => [id, s.data]));
  // Each request puts its own key: a session's writes since its creation (version 1) are its keys,
  // so a write applied twice shows as a version ahead of the key count.
  for (const [id, s] of sessions)
    if (s.version !== 1 + Object.keys(s.data).length)
      problems.push(`session ${id} at version ${s.version} with ${Object.keys(s.data).length} writes`);
  const describe = (r: CountedRequest, pids: number[], applied: boolean) => {
    const story = r.keyed ? ` [${(traffic.attempts.get(idempotencyKeyOf(r.session, r.key)) ?? []).join(' | ')}]` : '';
    const between =
      pids.length > 1 ? `, ${invocationsBetween(invocations, requestKey(r.session, r.key))} invocations of its session between` : '';
    return `${r.keyed ? 'keyed' : 'plain'} ${r.session} ${r.key} ${r.outcome}${r.code ? ` ${r.code}` : ''}: ran in [${pids.join(',')}]${between}, applied ${applied}${story}`;
  };
  for (const r of traffic.requests) {
    const pids = invocations.byRequest.get(requestKey(r.session, r.key)) ?? [];
    const lost = pids.filter((pid) => options.killedHandlers.has(pid)).length;
    const applied = Object.hasOwn(data.get(r.session) ?? {}, r.key);
    const what = () => describe(r, pids, applied);
    if (r.keyed) {
      account.keyed.invocations += pids.length;
      if (pids.length > 1 + lost) problems.push(`ran again: ${what()}`);
      else if (pids.length > 1) account.keyed.rerunsAfterKill += pids.length - 1;
      if (r.outcome !== 'acked') problems.push(`keyed request not acknowledged: ${what()}`);
    } else {
      account.plain.invocations += pids.length;
      if (pids.length > 1) problems.push(`ran twice: ${what()}`);
      if (r.outcome === 'unknown' && pids.length > 0) account.plain.unknownRan += 1;
      if (r.outcome === 'refused' && pids.length > 0) account.plain.refusedRan += 1;
    }
    if (r.outcome === 'acked' && (pids.length === 0 || !applied)) problems.push(`acknowledged but not run or not applied: ${what()}`);
    if ((r.outcome === 'refused' || r.outcome === 'notSent') && applied) problems.push(`applied though refused: ${what()}`);
    if (r.outcome === 'notSent' && pids.length > 0) problems.push(`ran though not sent: ${what()}`);
  }
  const sent = new Set(traffic.requests.map((r) => requestKey(r.session, r.key)));
  for (const [id, record] of data)
    for (const key of Object.keys(record))
      if (!sent.has(requestKey(id, key)) && !options.extraKeys.includes(key)) problems.push(`stray write ${id} ${key}`);
  for (const [request, pids] of invocations.byRequest) {
    const extra = options.extraKeys.some((k) => request.endsWith(` ${k}`));
    if (!sent.has(request) && !(extra && pids.length === 1)) problems.push(`stray invocation ${request} x${pids.length}`);
  }
  return account;
}
