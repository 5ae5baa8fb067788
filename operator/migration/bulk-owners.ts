// The migration's owner operations (owner-ops.ts) for a RedisSessionStore, batched per master:
// the sessions of a batch are grouped by the master that serves their slot, and each group is
// sent as a few script calls (at most CHUNK sessions each, so no call blocks a master for long)
// that run the store's own per-session script (SET_MOVING, MIGRATE: lua.ts, unchanged) for every
// session of the call. The per-session work in Redis is the same as the store's; what goes is the
// per-command cost: about 1,000 EVALSHA per master become one, on the client (the cluster client's
// slot lookup and command object per key) and on the server (a script call's set-up).
//
// A session is served alone, through the store's own path (the cluster client, with its MOVED/ASK
// handling and retries), when its master cannot run it in the call: the slot is not (or no longer)
// that node's, or moving (resharding: the script's first read of a key that is not local fails), or the
// call itself failed (a connection lost: every step here is safe to repeat, a repeated MIGRATE is
// refused and the executor's re-read recognises the move), or the server predates script flags
// (Redis < 7.0: every session alone from then on). So the result is the store's in every case.
//
// Index updates stay per owner, as in the store's migrateOwners (operator/store/ownership.ts), and in
// the same order (add to the targets' indexes before the swap, remove from the sources' after).
import type { Cluster, Redis } from 'ioredis';
import type { RedisSessionStore } from '../store/session-store.ts';
import { SessionCorruptedError } from '../store/errors.ts';
import { MIGRATE, SET_MOVING, isNoScript, scripts, type LuaReply } from '../store/lua.ts';
import { addToOwnerIndexes } from '../store/indexes.ts';
import { afterMoves, migrateOutcomes, ownerEntries } from '../store/ownership.ts';
import { assertName, assertPoolId, assertSessionId, keySlot } from '../store/keys.ts';
import { H, HEADER_MAX_BYTES, SCHEMA_VERSION, splitHeader, splitValue } from '../store/codec.ts';
import type { OwnerMove, OwnerMoveOutcome } from '../store/types.ts';
import type { OwnerOps, OwnerRead } from './owner-ops.ts';
import { createHash } from 'node:crypto';

/** Sessions per script call: about 5 to 10 ms of a master's time for a MIGRATE each. */
export const CHUNK = 500;

/** Not run in the call (not local, or the call failed): the caller serves the session alone. */
const ALONE = Symbol('alone');
type BulkReply = LuaReply | typeof ALONE | { error: string };

function isError(reply: BulkReply): reply is { error: string } {
  return typeof reply === 'object' && reply !== null && !Array.isArray(reply) && 'error' in reply;
}

/**
 * The store's prelude (parse, load, save, now_ms), taken from a script the store builds from it, with
 * the clock read once per call: every session of a call gets the call's start as its `now` (a lease
 * from MIGRATE ends at most the call's few milliseconds earlier than the store's own would), and the
 * master's TIME is asked once per call instead of once per session.
 */
function storePrelude(): string {
  const { source } = scripts.migrate;
  if (!source.endsWith(MIGRATE) || !scripts.setMoving.source.endsWith(SET_MOVING))
    throw new Error('the store scripts no longer end with their bodies: bulk-owners.ts needs updating');
  return `${source.slice(0, source.length - MIGRATE.length)}
local clock, call_now = now_ms, nil
local function now_ms()
  if not call_now then call_now = clock() end
  return call_now
end
`;
}

/**
 * One script that runs `body` (a per-session script of the store: KEYS[1] the session, ARGV its
 * arguments) for each session of a call. ARGV = argsPerKey, the number of shared arguments, the shared
 * arguments, then per session its key and its own arguments; the body's ARGV is the session's own
 * arguments followed by the shared ones (the pool, the migration, the lease: sent once per call).
 * Reply per session: the body's reply, or {'E', message} when the body raised an error: a corrupted
 * session (CORRUPT), or a key this node does not serve. Every body reads its key before it writes
 * anything (the store's `load`, or GETRANGE), and Redis refuses that read of a key that is not local
 * (another node's slot, or a slot being migrated without the key here): the error comes before any
 * write, so it is the whole test, with no EXISTS per key first.
 */
class MultiKeyScript {
  readonly source: string;
  readonly sha: string;
  constructor(prelude: string, body: string) {
    this.source = `#!lua flags=allow-cross-slot-keys
${prelude}
local function one(KEYS, ARGV)
${body}
end
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local i = 3 + m
while i <= #ARGV do
  local key = ARGV[i]
  local args = {}
  for j = 1, n do args[j] = ARGV[i + j] end
  for j = 1, m do args[n + j] = ARGV[2 + j] end
  local ok, r = pcall(one, {key}, args)
  if ok then
    out[#out + 1] = r
  else
    out[#out + 1] = {'E', type(r) == 'table' and tostring(r.err) or tostring(r)}
  end
  i = i + 1 + n
end
return out
`;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }
}

const READ_BODY = `return redis.call('GETRANGE', KEYS[1], 0, ${HEADER_MAX_BYTES - 1})`;

/** A script refused for a reason no later call will change (a server without script flags). */
function isUnsupported(error: unknown): boolean {
  return error instanceof Error && /Unexpected flag|shebang|Error compiling script|unknown flag/i.test(error.message);
}

export class BulkOwnerOps implements OwnerOps {
  private readonly store: RedisSessionStore;
  private readonly read_: MultiKeyScript;
  private readonly mark_: MultiKeyScript;
  private readonly migrate_: MultiKeyScript;
  /** Set when the server refused the multi-key scripts: every session goes alone from then on. */
  unsupported = false;
  /** Sessions served alone so far (a test reads it). */
  alone = 0;

  /** When given, ms spent on the owner-index updates are added under 'indexes' (the benchmark's breakdown). */
  private readonly timings: Map<string, number> | undefined;

  constructor(store: RedisSessionStore, timings?: Map<string, number>) {
    this.store = store;
    this.timings = timings;
    const prelude = storePrelude();
    this.read_ = new MultiKeyScript('', READ_BODY);
    this.mark_ = new MultiKeyScript(prelude, SET_MOVING);
    this.migrate_ = new MultiKeyScript(prelude, MIGRATE);
  }

  private get redis(): Cluster {
    return this.store.core.redis;
  }

  /**
   * Runs `script` for every key: one call per master per CHUNK keys, all in flight at once. A key
   * whose master is unknown (no slot map yet) or whose call failed comes back ALONE.
   */
  private async runAll(
    script: MultiKeyScript,
    keys: string[],
    args: (i: number) => (string | number)[],
    argsPerKey: number,
    shared: (string | number)[] = [],
  ): Promise<BulkReply[]> {
    const replies: BulkReply[] = new Array<BulkReply>(keys.length).fill(ALONE);
    if (this.unsupported || keys.length === 0) return replies;
    const nodes = new Map<string, Redis>();
    for (const node of this.redis.nodes('master')) nodes.set(`${node.options.host}:${node.options.port}`, node);
    const byNode = new Map<Redis, number[]>();
    keys.forEach((key, i) => {
      const node = nodes.get(this.redis.slots[keySlot(key)]?.[0] ?? '');
      if (!node) return;
      const list = byNode.get(node) ?? [];
      list.push(i);
      byNode.set(node, list);
    });
    const calls: Promise<void>[] = [];
    for (const [node, indexes] of byNode) {
      for (let c = 0; c < indexes.length; c += CHUNK) {
        const chunk = indexes.slice(c, c + CHUNK);
        const argv: (string | number)[] = [argsPerKey, shared.length, ...shared];
        for (const i of chunk) argv.push(keys[i]!, ...args(i));
        calls.push(
          this.call(node, script, argv).then(
            (reply) => {
              if (!Array.isArray(reply) || reply.length !== chunk.length) return;
              chunk.forEach((i, k) => {
                const r = reply[k]!;
                replies[i] = Array.isArray(r) && r[0] === 'E' ? { error: String(r[1]) } : r;
              });
            },
            (error: unknown) => {
              if (isUnsupported(error)) this.unsupported = true;
              this.store.core.logger.debug(
                { err: error instanceof Error ? error.message : String(error) },
                'bulk owner call failed: sessions go alone',
              );
            },
          ),
        );
      }
    }
    await Promise.all(calls);
    return replies;
  }

  private call(node: Redis, script: MultiKeyScript, argv: (string | number)[]): Promise<LuaReply> {
    return (node.evalsha(script.sha, 0, ...argv) as Promise<LuaReply>).catch((error: unknown) => {
      if (isNoScript(error)) return node.eval(script.source, 0, ...argv) as Promise<LuaReply>;
      throw error;
    });
  }

  async read(pool: string, ids: string[]): Promise<Map<string, OwnerRead>> {
    assertPoolId(pool);
    ids.forEach((id) => assertSessionId(id));
    const { keys } = this.store.core;
    const replies = await this.runAll(
      this.read_,
      ids.map((id) => keys.session(pool, id)),
      () => [],
      0,
    );
    const states = new Map<string, OwnerRead>();
    const alone: string[] = [];
    replies.forEach((reply, i) => {
      const id = ids[i]!;
      if (reply === '') return; // absent (a session value is never empty)
      const h = typeof reply === 'string' ? splitHeader(splitValue(reply)?.header) : null;
      const ep = h?.[H.ep];
      // Not read here, or unreadable: the store's readOwners reads it (and quarantines a corrupted one).
      if (!h || !ep || !/^-?[0-9]+$/.test(ep) || h[H.pool] !== pool || h[H.sv] !== SCHEMA_VERSION) return void alone.push(id);
      states.set(id, { owner: h[H.own] || null, epoch: Number(ep) });
    });
    if (alone.length > 0) {
      this.alone += alone.length;
      for (const [id, state] of await this.store.readOwners(pool, alone)) states.set(id, state);
    }
    return states;
  }

  async mark(pool: string, ids: string[], migration: string | null): Promise<void> {
    assertPoolId(pool);
    ids.forEach((id) => assertSessionId(id));
    if (migration !== null) assertName('migration', migration);
    const { core } = this.store;
    const sessionKeys = ids.map((id) => core.keys.session(pool, id));
    const replies = await this.runAll(this.mark_, sessionKeys, () => [], 0, [migration ?? '']);
    const alone: string[] = [];
    for (const [i, reply] of replies.entries()) {
      if (isError(reply) && reply.error.startsWith('CORRUPT')) await core.quarantine(pool, ids[i]!, 'header malformed');
      else if (reply === ALONE || isError(reply)) alone.push(ids[i]!);
    }
    if (alone.length > 0) {
      this.alone += alone.length;
      await this.store.setMoving(pool, alone, migration);
    }
    await core.afterWriteMany(sessionKeys.map((key, i) => ({ key, sessionId: ids[i]! })));
  }

  async migrate(pool: string, moves: OwnerMove[], migration: string): Promise<{ outcomes: OwnerMoveOutcome[]; clearsMarks: boolean }> {
    assertPoolId(pool);
    assertName('migration', migration);
    for (const move of moves) {
      assertSessionId(move.sessionId);
      if (move.fromOwner !== null) assertName('owner', move.fromOwner);
      if (move.toOwner !== null) assertName('owner', move.toOwner);
      if (!Number.isInteger(move.fromEpoch) || move.fromEpoch < 0) throw new Error('fromEpoch must be a non-negative integer');
    }
    if (moves.length === 0) return { outcomes: [], clearsMarks: true };
    const { core } = this.store;
    const { keys, settings } = core;
    const targets = ownerEntries(moves, (m) => m.toOwner);
    let started = performance.now();
    if (targets.length > 0) await core.exec('migrateOwners', () => Promise.all(addToOwnerIndexes(core, pool, targets)));
    this.time('indexes', started);
    const sessionKeys = moves.map((m) => keys.session(pool, m.sessionId));
    const argsOf = (i: number): (string | number)[] => {
      const m = moves[i]!;
      return [m.fromOwner ?? '', m.fromEpoch, m.toOwner ?? '', settings.defaultLeaseMs, pool, migration];
    };
    // MIGRATE's last three arguments (leaseMs, pool, migration) are the same for every session: shared.
    const bulk = await this.runAll(
      this.migrate_,
      sessionKeys,
      (i) => {
        const m = moves[i]!;
        return [m.fromOwner ?? '', m.fromEpoch, m.toOwner ?? ''];
      },
      3,
      [settings.defaultLeaseMs, pool, migration],
    );
    const replies: LuaReply[] = new Array<LuaReply>(moves.length).fill(null);
    const alone: Promise<void>[] = [];
    bulk.forEach((reply, i) => {
      if (isError(reply) && reply.error.startsWith('CORRUPT')) {
        alone.push(core.quarantine(pool, moves[i]!.sessionId, 'session malformed').then(() => void (replies[i] = [-1])));
      } else if (reply === ALONE || isError(reply)) {
        this.alone += 1;
        // The store's own path for one session: the cluster client, retries, NOSCRIPT, quarantine.
        const one = core.script('migrateOwners', scripts.migrate, [sessionKeys[i]!], argsOf(i)).catch((error: unknown) => {
          if (error instanceof SessionCorruptedError) return [-1];
          throw error;
        });
        alone.push(one.then((r) => void (replies[i] = r)));
      } else replies[i] = reply;
    });
    await Promise.all(alone);
    const { outcomes, moved, undo } = migrateOutcomes(core, moves, replies);
    await core.afterWriteMany(moved.map((m) => ({ key: keys.session(pool, m.move.sessionId), sessionId: m.move.sessionId })));
    // The store's own index steps after moves (its buckets, its order): one place for them.
    started = performance.now();
    await core.exec('migrateOwners', () => Promise.all(afterMoves(core, pool, moved, undo)));
    this.time('indexes', started);
    return { outcomes, clearsMarks: true };
  }

  private time(part: string, since: number): void {
    if (this.timings) this.timings.set(part, (this.timings.get(part) ?? 0) + performance.now() - since);
  }
}
