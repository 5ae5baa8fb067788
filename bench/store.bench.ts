// Session store benchmark: starts its own Redis Cluster (3 masters, 3 replicas, loopback) in
// a temp run dir, then at one concurrency measures raw ioredis GET, the store's get / update
// (and, for reference, get with touchGranularityMs 0, redis-benchmark GET and create), update's and
// create's floors (their Redis commands sent with raw ioredis, without the store's client work; for create
// also the same work as one script on one master, the floor of any create in one round trip), each
// as a ratio to raw ioredis GET, and Redis memory per stored session for a 1 KiB payload.
// Fairness: raw GET and the store use the same number of keys (BENCH_KEYS) of the same length and
// hash tags, the same 1 KiB payload, the same access order and concurrency, in interleaved rounds;
// the ratio is printed per round and as the median over rounds. Raw GET on 10-character keys is
// printed for reference. Stops the cluster at the end.
// Usage: npm run bench:store
//   (env: BENCH_CONCURRENCY=50 BENCH_OPS=20000 (per phase and round) BENCH_ROUNDS=9 BENCH_KEYS=1000 BENCH_MEMORY_SESSIONS=10000)
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { RedisStore } from 'connect-redis';
import { createCluster } from 'redis';
import type { SessionData } from 'express-session';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { redisEndpoints, startRedisCluster, stopRedisCluster, type RedisClusterState } from '../e2e/harness/redis-cluster.ts';
import { createSessionStore } from '../operator/store/index.ts';
import { scripts } from '../operator/store/lua.ts';
import { SCHEMA_VERSION, checksum, splitValue } from '../operator/store/codec.ts';
import { indexBucket, keySlot, newSessionId } from '../operator/store/keys.ts';
import { PROVISIONAL_INDEX_MS } from '../operator/store/records.ts';
import { median, percentile } from './stats.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
// Nine rounds: on this shared 2-core machine single rounds vary by about ±0.1, and the median of
// five still moved by ±0.04 between runs.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const MEMORY_SESSIONS = Number(process.env.BENCH_MEMORY_SESSIONS ?? 10_000);
const PAYLOAD = { blob: 'x'.repeat(1024 - 12) }; // serializes to 1024 bytes
const MAX_PHASE_MS = 30_000;

interface Phase {
  name: string;
  opsPerSec: number;
  p50?: number;
  p99?: number;
}

/** Runs `op` OPS times over CONCURRENCY loops; op gets (worker, i). */
async function measure(name: string, op: (worker: number, i: number) => Promise<unknown>, ops = OPS): Promise<Phase> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      while (next < ops && performance.now() - started < MAX_PHASE_MS) {
        const i = next++;
        const t0 = performance.now();
        await op(worker, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { name, opsPerSec: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function redisBenchmark(state: RedisClusterState): Promise<Phase> {
  const node = state.nodes[0]!;
  const { stdout } = await promisify(execFile)(
    'redis-benchmark',
    [
      '--cluster',
      '-h',
      state.host,
      '-p',
      String(node.port),
      '-t',
      'get',
      '-n',
      String(Math.max(OPS, 100_000)),
      '-c',
      String(CONCURRENCY),
      '-d',
      '1024',
      '-q',
    ],
    { timeout: 120_000 },
  );
  const match = /GET:\s*([\d.]+)\s*requests per second/.exec(stdout.replace(/\r/g, '\n'));
  return { name: 'redis-benchmark --cluster GET', opsPerSec: match ? Number(match[1]) : NaN };
}

async function usedMemory(redis: Cluster): Promise<number> {
  const infos = await Promise.all(redis.nodes('master').map((node) => node.info('memory')));
  return infos.reduce((sum, text) => sum + Number(/used_memory:(\d+)/.exec(text)?.[1] ?? 0), 0);
}

const runDir = mkdtempSync(path.join(tmpdir(), 'spo-bench-store-'));
const state = await startRedisCluster(runDir);
const endpoints = redisEndpoints(state);
const clusterOptions = { enableAutoPipelining: true };
const raw = new Cluster(
  endpoints.map((e) => ({ host: e.split(':')[0], port: Number(e.split(':')[1]) })),
  clusterOptions,
);
const storeRegistry = new Registry();
const storeOptions = {
  nodes: endpoints,
  keyPrefix: 'bench',
  registry: storeRegistry,
  logger: pino({ level: 'silent' }),
  degraded: { enabled: true },
};
const store = createSessionStore(storeOptions);
// The same sessions read with the touch on every get (granularity 0): the cost of the exact touch.
const everyGetStore = createSessionStore({ ...storeOptions, registry: new Registry(), touchGranularityMs: 0 });
// The peer a Node user would pick: connect-redis (express-session's Redis store) on node-redis' cluster
// client, also auto-pipelined. A request is its get, then its touch (express-session's default); a write is its set.
const peerClient = createCluster({ rootNodes: endpoints.map((e) => ({ url: `redis://${e}` })) });
const peer = new RedisStore({ client: peerClient, prefix: 'bench:c:', ttl: 3600 });
const peerGetTouch = async (sid: string): Promise<void> => {
  const session = (await peer.get(sid)) as SessionData | null;
  if (!session) throw new Error('connect-redis: session not found');
  await peer.touch(sid, session);
};
const peerSet = async (sid: string, session: SessionData): Promise<void> => {
  await peer.set(sid, session);
};
// The single-slot index layout (before buckets), for create/s against it in the same run: a second store whose
// pool index is the one key `{pool:<pool>}` (creates here are unowned: the pool index is their only index step).
const singleSlotStore = createSessionStore({ ...storeOptions, registry: new Registry() });
const bucketKeys = singleSlotStore.core.keys;
Object.assign(bucketKeys, { poolIndex: (pool: string) => `bench:{pool:${pool}}:sessions` });
const CREATE_OPS = Number(process.env.BENCH_CREATE_OPS ?? 5000);
const phases: Phase[] = [];
/** Connections of the masters, for update's and create's floors. */
const masters = new Map<string, Redis>();
try {
  await peerClient.connect();
  console.log(
    `store benchmark: 3 masters + 3 replicas on loopback, concurrency ${CONCURRENCY}, ${KEYS} keys, 1 KiB payloads, ${ROUNDS} interleaved rounds of ${OPS} ops per phase`,
  );
  const value = JSON.stringify(PAYLOAD);
  const ids: string[] = [];
  while (ids.length < KEYS)
    ids.push(
      ...(
        await Promise.all(Array.from({ length: Math.min(100, KEYS - ids.length) }, () => store.create({ pool: 'bench', data: PAYLOAD })))
      ).map((r) => r.id),
    );
  // Raw GET reads the same 1 KiB under keys shaped like the sessions' (same length, same hash tags, so the
  // same slots and nodes): a session id has 128 random bits by requirement, and the client hashes every
  // key several times per command, so key length is not store overhead. Short keys are printed for reference.
  const rawKeys = ids.map((id) => `bench:r:{bench|${id}}`); // the shape of the sessions' keys (pool `bench`)
  const shortKeys = Array.from({ length: KEYS }, (_, i) => `raw:{k${i}}`);
  await Promise.all([...rawKeys, ...shortKeys].map((k) => raw.set(k, value)));
  // connect-redis' keys have the sessions' shape too: `bench:c:` + `{bench|<id>}`, a session of the same 1 KiB payload.
  const peerIds = ids.map((id) => `{bench|${id}}`);
  const peerSession = (n: number): SessionData => ({ cookie: { originalMaxAge: null }, ...PAYLOAD, n }) as unknown as SessionData;
  await Promise.all(peerIds.map((sid) => peerSet(sid, peerSession(0))));
  // The same access order for raw GET and store.get: a stride over the KEYS keys.
  const at = (i: number) => (i * 7919) % KEYS;
  await measure('warm-up', (_w, i) => raw.get(rawKeys[at(i)]!), 5000);
  await measure('warm-up', (_w, i) => store.get(ids[at(i)]!, { pool: 'bench' }), 5000);
  await measure('warm-up', (_w, i) => everyGetStore.get(ids[at(i)]!, { pool: 'bench' }), 5000);
  await measure('warm-up', (_w, i) => peerGetTouch(peerIds[at(i)]!), 5000);
  // Each loop updates its own sessions (index ≡ loop mod CONCURRENCY), so versions never conflict.
  const versions = new Map<string, number>();
  const perLoop = Math.max(1, Math.floor(KEYS / CONCURRENCY));
  const turns = new Array<number>(CONCURRENCY).fill(0);
  let updates = 0;
  const update = async (worker: number) => {
    const id = ids[(worker + CONCURRENCY * (turns[worker]!++ % perLoop)) % ids.length]!;
    const v = versions.get(id) ?? 1;
    const rec = await store.update(id, { ...PAYLOAD, n: updates++ }, { pool: 'bench', expectedVersion: v });
    versions.set(id, rec.version);
  };
  // Interleaved rounds, so load from elsewhere on the machine weighs on each about equally.
  // update's floor: the script of update's fast path (WRITE_IF_HEADER) with a header that matches, each session's
  // stored value written back as it is, sent with raw ioredis on the connection of the key's master (auto-
  // pipelined, as the store sends it): the Redis work of a fenced, versioned write of the same 1 KiB, without
  // the store's client work (encoding, checksum, cache, record, metrics).
  const sessionKeys = ids.map((id) => store.core.keys.session('bench', id));
  for (const n of raw.nodes('master'))
    masters.set(
      `${n.options.host}:${n.options.port}`,
      new Redis({ host: n.options.host, port: n.options.port, enableAutoPipelining: true }),
    );
  const masterFor = (key: string): Redis => masters.get(raw.slots[keySlot(key)]![0]!)!;
  const masterOf = sessionKeys.map(masterFor);
  await Promise.all(
    [...masters.values()].flatMap((m) => [m.script('LOAD', scripts.writeIfHeader.source), m.script('LOAD', scripts.create.source)]),
  );
  const floorWrite = async (): Promise<Phase> => {
    const stored = (await Promise.all(sessionKeys.map((k) => raw.get(k)))).map((v) => {
      const parts = splitValue(v);
      if (!v || !parts) throw new Error('update floor: a session is missing');
      return { value: v, expected: `${parts.header}\n` };
    });
    const floorTurns = new Array<number>(CONCURRENCY).fill(0);
    return measure('update floor', (worker) => {
      const i = (worker + CONCURRENCY * (floorTurns[worker]!++ % perLoop)) % ids.length;
      const { value, expected } = stored[i]!;
      return masterOf[i]!.evalsha(
        scripts.writeIfHeader.sha,
        1,
        sessionKeys[i]!,
        value,
        expected,
        Date.now(),
        3600,
        store.core.settings.touchGranularityMs,
        -1,
      );
    });
  };
  // create's floor: what a create asks of Redis, sent with raw ioredis on the masters' connections: the index
  // entry in the session's bucket (ZADD), then the CREATE script (a fresh id, the 1 KiB serialized once, its
  // checksum once), in that order as the store sends them, without the store's client work (id, encoding,
  // checksum, record, metrics). The two steps are ordered for crash safety (docs/store.md), so two round trips.
  const floorPool = 'bench-create-floor';
  const floorData = JSON.stringify(PAYLOAD);
  const floorChecksum = checksum(floorData);
  const ttlSeconds = store.core.ttlFor(floorPool, false, undefined);
  let floorWid = 0;
  /** CREATE's arguments for a new unowned session of the floor's pool (a fresh write id each). */
  const createArgs = () => [
    floorPool,
    floorData,
    floorChecksum,
    ttlSeconds,
    '0',
    '',
    `f${floorWid++}`,
    store.core.settings.defaultLeaseMs,
    SCHEMA_VERSION,
  ];
  const floorCreate = (): Promise<Phase> =>
    measure(
      'create floor',
      async () => {
        const id = newSessionId();
        const index = store.core.keys.poolIndex(floorPool, indexBucket(id));
        await masterFor(index).zadd(index, Date.now() + PROVISIONAL_INDEX_MS, id);
        const key = store.core.keys.session(floorPool, id);
        await masterFor(key).evalsha(scripts.create.sha, 1, key, ...createArgs());
      },
      CREATE_OPS,
    );
  // The floor of a create in one round trip: the index entry and CREATE as one script on one master (ids
  // drawn until the session's key and its bucket share a master; a multi-key script sent on that master's
  // connection, as the migration's bulk calls are). The store does not do this (ids are not drawn by the
  // cluster's layout, and a client's own ids could not be); it bounds what such a layout could reach.
  const oneCallSource = `#!lua flags=allow-cross-slot-keys
local KEYS = {ARGV[10]}
redis.call('ZADD', ARGV[11], ARGV[12], ARGV[13])
${scripts.create.source}`;
  const oneCallSha = (await Promise.all([...masters.values()].map((m) => m.script('LOAD', oneCallSource))))[0] as string;
  const floorCreateOneCall = (): Promise<Phase> =>
    measure(
      'create floor, one call',
      async () => {
        let id: string, key: string, index: string;
        do {
          id = newSessionId();
          key = store.core.keys.session(floorPool, id);
          index = store.core.keys.poolIndex(floorPool, indexBucket(id));
        } while (masterFor(key) !== masterFor(index));
        const reply = await masterFor(key).evalsha(oneCallSha, 0, ...createArgs(), key, index, Date.now() + PROVISIONAL_INDEX_MS, id);
        if (!Array.isArray(reply) || reply[0] !== 1) throw new Error('create floor, one call: not created');
      },
      CREATE_OPS,
    );
  const rounds: Record<
    | 'raw'
    | 'short'
    | 'get'
    | 'getEvery'
    | 'update'
    | 'floor'
    | 'peerGet'
    | 'peerSet'
    | 'create'
    | 'createSingle'
    | 'createFloor'
    | 'createOneCall',
    Phase[]
  > = {
    floor: [],
    raw: [],
    short: [],
    get: [],
    getEvery: [],
    update: [],
    peerGet: [],
    peerSet: [],
    create: [],
    createSingle: [],
    createFloor: [],
    createOneCall: [],
  };
  let peerWrites = 0;
  console.log(
    `\n${'round'.padEnd(8)}${'raw GET/s'.padStart(12)}${'get x'.padStart(9)}${'update x'.padStart(10)}${'floor x'.padStart(9)}${'get(touch every) x'.padStart(20)}${'create x'.padStart(10)}${'1-slot create x'.padStart(17)}${'create floor x'.padStart(16)}${'1-call floor x'.padStart(16)}${'c-r get+touch x'.padStart(17)}${'c-r set x'.padStart(11)}`,
  );
  for (let round = 0; round < ROUNDS; round++) {
    const r = await measure('raw ioredis GET', (_w, i) => raw.get(rawKeys[at(i)]!));
    // Right after, so that both baselines meet the same state of the machine and of this process.
    rounds.short.push(await measure('raw ioredis GET, short keys', (_w, i) => raw.get(shortKeys[at(i)]!)));
    // The reference phase is another store instance that touches every session: run before store.get, so
    // that store.update follows this store's own reads, as a worker reads a session before it writes it.
    // (Right before store.update it would leave every cached header stale, and the first update of each
    // session in a round would take the fallback; the update paths are printed below.)
    const e = await measure('store.get, touch every get', (_w, i) => everyGetStore.get(ids[at(i)]!, { pool: 'bench' }));
    const g = await measure('store.get', (_w, i) => store.get(ids[at(i)]!, { pool: 'bench' }));
    const u = await measure('store.update', (w) => update(w));
    const f = await floorWrite();
    // Creates: buckets and the single-slot layout, alternating which goes first.
    const creates = [
      () => measure('store.create', () => store.create({ pool: 'bench-create', data: PAYLOAD }), CREATE_OPS),
      () => measure('store.create, single-slot index', () => singleSlotStore.create({ pool: 'bench-create1', data: PAYLOAD }), CREATE_OPS),
    ];
    const [c, c1] = round % 2 ? [await creates[0]!(), await creates[1]!()] : [...[await creates[1]!(), await creates[0]!()].reverse()];
    const cf = await floorCreate();
    const co = await floorCreateOneCall();
    const pg = await measure('connect-redis get+touch', (_w, i) => peerGetTouch(peerIds[at(i)]!));
    const ps = await measure('connect-redis set', (_w, i) => peerSet(peerIds[at(i)]!, peerSession(peerWrites++)));
    rounds.raw.push(r);
    rounds.get.push(g);
    rounds.update.push(u);
    rounds.floor.push(f);
    rounds.getEvery.push(e);
    rounds.create.push(c!);
    rounds.createSingle.push(c1!);
    rounds.createFloor.push(cf);
    rounds.createOneCall.push(co);
    rounds.peerGet.push(pg);
    rounds.peerSet.push(ps);
    const x = (p: Phase) => p.opsPerSec / r.opsPerSec;
    console.log(
      `${String(round + 1).padEnd(8)}${r.opsPerSec.toFixed(0).padStart(12)}${x(g).toFixed(2).padStart(9)}${x(u).toFixed(2).padStart(10)}${x(f).toFixed(2).padStart(9)}${x(e).toFixed(2).padStart(20)}${x(c!).toFixed(2).padStart(10)}${x(c1!).toFixed(2).padStart(17)}${x(cf).toFixed(2).padStart(16)}${x(co).toFixed(2).padStart(16)}${x(pg).toFixed(2).padStart(17)}${x(ps).toFixed(2).padStart(11)}`,
    );
  }
  const ratios = (list: Phase[]) => list.map((p, i) => p.opsPerSec / rounds.raw[i]!.opsPerSec);
  const medianGet = median(ratios(rounds.get));
  const medianUpdate = median(ratios(rounds.update));
  const medianEvery = median(ratios(rounds.getEvery));
  const medianCreate = median(ratios(rounds.create));
  const medianCreateSingle = median(ratios(rounds.createSingle));
  console.log(
    `${'median'.padEnd(8)}${''.padStart(12)}${medianGet.toFixed(2).padStart(9)}${medianUpdate.toFixed(2).padStart(10)}${median(ratios(rounds.floor)).toFixed(2).padStart(9)}${medianEvery.toFixed(2).padStart(20)}${medianCreate.toFixed(2).padStart(10)}${medianCreateSingle.toFixed(2).padStart(17)}${median(ratios(rounds.createFloor)).toFixed(2).padStart(16)}${median(ratios(rounds.createOneCall)).toFixed(2).padStart(16)}${median(ratios(rounds.peerGet)).toFixed(2).padStart(17)}${median(ratios(rounds.peerSet)).toFixed(2).padStart(11)}`,
  );
  console.log(
    `create with buckets / single-slot layout, median of per-round ratios: ${median(rounds.create.map((p, i) => p.opsPerSec / rounds.createSingle[i]!.opsPerSec)).toFixed(2)}`,
  );

  const paths = await storeRegistry.getSingleMetricAsString('spo_store_update_paths_total');
  const count = (path: string) => Number(new RegExp(`path="${path}"} (\\d+)`).exec(paths)?.[1] ?? 0);
  const allUpdates = count('fast') + count('fallback') + count('full');
  console.log(
    `update paths: fast ${((100 * count('fast')) / allUpdates).toFixed(1)} %, fallback ${((100 * count('fallback')) / allUpdates).toFixed(1)} %, full ${((100 * count('full')) / allUpdates).toFixed(1)} % of ${allUpdates}`,
  );

  const combine = (name: string, list: Phase[]): Phase => ({
    name,
    opsPerSec: list.length / list.reduce((sum, p) => sum + 1 / p.opsPerSec, 0),
    p50: median(list.map((p) => p.p50 ?? 0)),
    p99: Math.max(...list.map((p) => p.p99 ?? 0)),
  });
  const rawGet = combine('raw ioredis GET', rounds.raw);
  phases.push(
    rawGet,
    await redisBenchmark(state),
    combine('store.get', rounds.get),
    combine('store.update', rounds.update),
    combine("update floor (its script, a master's connection)", rounds.floor),
    combine('store.get, touch every get', rounds.getEvery),
    combine('store.create', rounds.create),
    combine('store.create, single-slot index', rounds.createSingle),
    combine("create floor (its commands, the masters' connections)", rounds.createFloor),
    combine('create floor, one call (index and session in one script)', rounds.createOneCall),
    combine('connect-redis get+touch', rounds.peerGet),
    combine('connect-redis set', rounds.peerSet),
    combine('raw ioredis GET, 10-char keys', rounds.short),
  );

  console.log('');
  console.log(
    `${'phase (all rounds)'.padEnd(58)}${'ops/s'.padStart(12)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'x raw GET'.padStart(12)}`,
  );
  for (const phase of phases) {
    console.log(
      `${phase.name.padEnd(58)}${phase.opsPerSec.toFixed(0).padStart(12)}${(phase.p50?.toFixed(3) ?? '-').padStart(10)}${(phase.p99?.toFixed(3) ?? '-').padStart(10)}${(phase.opsPerSec / rawGet.opsPerSec).toFixed(2).padStart(12)}`,
    );
  }
  console.log(
    `\ntargets (median of per-round ratios): get >= 0.80 x raw (${medianGet.toFixed(2)}: ${medianGet >= 0.8 ? 'met' : 'MISSED'}), update >= 0.60 x raw (${medianUpdate.toFixed(2)}: ${medianUpdate >= 0.6 ? 'met' : 'MISSED'}), create >= 0.40 x raw (${medianCreate.toFixed(2)}: ${medianCreate >= 0.4 ? 'met' : 'MISSED'})`,
  );
  console.log(
    `update against its floor (the same write's script sent with raw ioredis), median of per-round ratios: ${median(rounds.update.map((p, i) => p.opsPerSec / rounds.floor[i]!.opsPerSec)).toFixed(2)}`,
  );
  console.log(
    `create against its floor (the same two steps sent with raw ioredis), median of per-round ratios: ${median(rounds.create.map((p, i) => p.opsPerSec / rounds.createFloor[i]!.opsPerSec)).toFixed(2)}`,
  );
  const againstShort = (list: Phase[]) => median(list.map((p, i) => p.opsPerSec / rounds.short[i]!.opsPerSec));
  console.log(
    `for reference, against raw GET on 10-char keys: get ${againstShort(rounds.get).toFixed(2)} x, update ${againstShort(rounds.update).toFixed(2)} x`,
  );

  // Memory per session: a fresh pool, used_memory summed over masters before and after.
  const memStore = createSessionStore({ nodes: endpoints, keyPrefix: 'mem', registry: new Registry(), logger: pino({ level: 'silent' }) });
  try {
    await memStore.create({ pool: 'mem', data: PAYLOAD }); // scripts loaded, index keys exist
    const before = await usedMemory(raw);
    let made = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (made < MEMORY_SESSIONS) {
          made++;
          await memStore.create({ pool: 'mem', data: PAYLOAD });
        }
      }),
    );
    const after = await usedMemory(raw);
    console.log(
      `memory: ${((after - before) / made).toFixed(0)} bytes of Redis memory (masters, INFO used_memory delta) per session with a 1 KiB payload, over ${made} sessions (hash + pool-index entry)`,
    );
  } finally {
    await memStore.close();
  }
} finally {
  await store.close();
  await everyGetStore.close();
  await singleSlotStore.close();
  await peerClient.close();
  raw.disconnect();
  for (const m of masters.values()) m.disconnect();
  await stopRedisCluster(state);
  rmSync(runDir, { recursive: true, force: true });
}
