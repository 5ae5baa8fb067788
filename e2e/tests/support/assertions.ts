// The invariants every session move must keep, asserted the same way by every suite: no
// session lost, no acknowledged write lost, no session with two owners, no client request
// failing (retries allowed), and traffic that really ran.
import { expect } from 'chai';
import { type TestPool } from './migration-env.ts';
import { checkInvariants, type InvariantReport, type Traffic } from './traffic.ts';

/** Indented like mocha's output, for figures worth seeing in the test log. */
export function log(line: string): void {
  console.log(`      ${line}`);
}

/** Stops the traffic, reads every session back and asserts the invariants. */
export async function expectNothingLost(pool: TestPool, traffic: Traffic): Promise<InvariantReport> {
  const stats = await traffic.stop();
  const report = await checkInvariants(pool, stats);
  log(
    `traffic: ${stats.requests} requests, ${traffic.totalAcked()} acknowledged increments, ${stats.failures.length} failed, longest request ${stats.maxLatencyMs} ms`,
  );
  expect(report.lost, 'sessions lost').to.deep.equal([]);
  expect(report.lostWrites, 'acknowledged writes lost').to.deep.equal([]);
  expect(report.twoOwners, 'sessions with two owners').to.deep.equal([]);
  expect(stats.failures.slice(0, 5), 'client requests failed').to.deep.equal([]);
  expect(traffic.totalAcked(), 'acknowledged increments').to.be.greaterThan(0);
  return report;
}
