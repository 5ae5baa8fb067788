// The leader election timings, the one source for the elector (leader-election.ts) and the
// operator's flags (cmd/config.ts). A module without imports, so the configuration can be
// parsed before client-node and the loggers load.
//
// Takeover after the leader dies: a standby sees the last renewal up to one retry period late,
// then waits one lease duration from that observation, then acquires (one request):
// worst case lease + retry + one request = 10 + 2 + < 1 s, inside the 15 s the issue asks with
// room for a slow apiserver. The leader steps down when it has not renewed for the renew
// deadline, counted from the start of its last successful renewal: 3 s before the earliest
// takeover (lease − renew deadline), so two leaders never overlap.
export const DEFAULT_LEASE_DURATION_MS = 10_000;
export const DEFAULT_RENEW_DEADLINE_MS = 7_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/** What the defaults guarantee (checked by leader-election.test.ts). */
export const TAKEOVER_BOUND_MS = 15_000;
