// A real Redis Cluster from Debian's redis-server: three masters and three replicas on
// loopback, each node in its own directory. The state file lets any process (a test, the
// sandbox) stop, restart or fail over one node of a cluster another process started.
// With `tls` the cluster is TLS-only: no plain port, TLS on the cluster bus and replication,
// and client certificates required (Redis' tls-auth-clients yes).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { Redis } from 'ioredis';
import type { RedisTlsPki } from './pki.ts';
import { freePortPairs } from './ports.ts';
import { isRunning, readProcessRecord, run, startProcess, stopRecorded, waitFor } from './processes.ts';

export interface RedisNodeState {
  index: number;
  port: number;
  dir: string;
}

export interface RedisClusterState {
  runDir: string;
  host: string;
  nodes: RedisNodeState[];
  /** Milliseconds before a silent master is failed over; short so fault tests stay short. */
  nodeTimeoutMs: number;
  /** Set: the nodes speak TLS only, with these certificates. */
  tls?: RedisTlsPki;
}

export interface RedisNodeRole {
  index: number;
  port: number;
  role: 'master' | 'replica';
  nodeId: string;
  /** For a replica, the node id of its master. */
  masterId?: string;
}

const BUS_PORT_OFFSET = 10_000;
const NODE_COUNT = 6;

function redisServerBin(): string {
  const candidates = [process.env.SPO_REDIS_SERVER, '/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new Error("redis-server not found: install Debian's redis-server (scripts/bootstrap.sh does) or set SPO_REDIS_SERVER");
}

function redisCliBin(): string {
  const candidates = [process.env.SPO_REDIS_CLI, '/usr/bin/redis-cli', '/usr/local/bin/redis-cli'];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new Error("redis-cli not found: install Debian's redis-tools");
}

const stateFile = (runDir: string) => path.join(runDir, 'redis-cluster.json');
const nodeName = (index: number) => `redis-${index}`;

export function readRedisClusterState(runDir: string): RedisClusterState {
  return JSON.parse(readFileSync(stateFile(runDir), 'utf8')) as RedisClusterState;
}

/** "host:port" of every node, the form the store's configuration takes. */
export function redisEndpoints(state: RedisClusterState): string[] {
  return state.nodes.map((n) => `${state.host}:${n.port}`);
}

function tlsArgs(state: RedisClusterState, node: RedisNodeState): string[] {
  if (!state.tls) return ['--port', String(node.port)];
  const { tls } = state;
  return [
    '--port',
    '0',
    '--tls-port',
    String(node.port),
    '--tls-cluster',
    'yes',
    '--tls-replication',
    'yes',
    '--tls-cert-file',
    tls.nodeCert,
    '--tls-key-file',
    tls.nodeKey,
    '--tls-ca-cert-file',
    tls.caCert,
    '--tls-auth-clients',
    'yes',
  ];
}

/** TLS options of a harness client of a TLS cluster: its CA, the client certificate, the name. */
export function tlsClientOptions(state: RedisClusterState): ConnectionOptions | undefined {
  if (!state.tls) return undefined;
  const { tls } = state;
  return {
    ca: readFileSync(tls.caCert, 'utf8'),
    cert: readFileSync(tls.clientCert, 'utf8'),
    key: readFileSync(tls.clientKey, 'utf8'),
    servername: tls.serverName,
  };
}

/** A single-node client for the harness' own checks (ping, roles, info). */
function nodeClient(state: RedisClusterState, port: number): Redis {
  const tls = tlsClientOptions(state);
  const client = new Redis({
    host: state.host,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    ...(tls ? { tls } : {}),
  });
  client.on('error', () => undefined);
  return client;
}

function startNode(state: RedisClusterState, node: RedisNodeState): void {
  mkdirSync(node.dir, { recursive: true });
  startProcess({
    name: nodeName(node.index),
    bin: redisServerBin(),
    cwd: node.dir,
    runDir: state.runDir,
    args: [
      ...tlsArgs(state, node),
      '--bind',
      state.host,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      String(state.nodeTimeoutMs),
      '--dir',
      node.dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      // Replicas sync at once (no 5 s diskless delay) and may always fail over, so a
      // failover test right after start-up does not find an unsynced replica.
      '--repl-diskless-sync-delay',
      '0',
      '--cluster-replica-validity-factor',
      '0',
    ],
  });
}

async function ping(state: RedisClusterState, port: number): Promise<boolean> {
  const client = nodeClient(state, port);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function infoSection(state: RedisClusterState, port: number, section: string): Promise<Map<string, string>> {
  const client = nodeClient(state, port);
  try {
    await client.connect();
    const text = await client.info(section);
    return new Map(
      text
        .split('\r\n')
        .filter((l) => l.includes(':'))
        .map((line) => line.split(':') as [string, string]),
    );
  } finally {
    client.disconnect();
  }
}

/** Waits until every replica's link to its master is up (its initial sync has finished). */
export async function waitForReplicasInSync(state: RedisClusterState, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    'every Redis replica in sync with its master',
    async () => {
      for (const role of await redisRoles(state)) {
        if (role.role !== 'replica') continue;
        const info = await infoSection(state, role.port, 'replication');
        if (info.get('master_link_status') !== 'up') return undefined;
      }
      return true;
    },
    timeoutMs,
    200,
  );
}

async function clusterInfo(state: RedisClusterState, port: number): Promise<Map<string, string>> {
  const client = nodeClient(state, port);
  try {
    await client.connect();
    const text = (await client.call('CLUSTER', 'INFO')) as string;
    return new Map(
      text
        .split('\r\n')
        .filter(Boolean)
        .map((line) => line.split(':') as [string, string]),
    );
  } finally {
    client.disconnect();
  }
}

/** Waits until every running node reports cluster_state:ok with all slots covered. */
export async function waitForClusterOk(state: RedisClusterState, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    'Redis Cluster state ok on every running node',
    async () => {
      for (const node of state.nodes) {
        const record = readProcessRecord(state.runDir, nodeName(node.index));
        if (!record || !isRunning(record)) continue;
        const info = await clusterInfo(state, node.port);
        if (info.get('cluster_state') !== 'ok' || info.get('cluster_slots_ok') !== '16384') return undefined;
      }
      return true;
    },
    timeoutMs,
    250,
  );
}

export async function startRedisCluster(
  runDir: string,
  options: { nodeTimeoutMs?: number; tls?: RedisTlsPki } = {},
): Promise<RedisClusterState> {
  const ports = await freePortPairs(NODE_COUNT, BUS_PORT_OFFSET);
  const state: RedisClusterState = {
    runDir,
    host: '127.0.0.1',
    nodeTimeoutMs: options.nodeTimeoutMs ?? 2000,
    nodes: ports.map((port, index) => ({ index, port, dir: path.join(runDir, 'redis', `node-${index}`) })),
    ...(options.tls ? { tls: options.tls } : {}),
  };
  for (const node of state.nodes) startNode(state, node);
  for (const node of state.nodes) {
    await waitFor(`redis-server on port ${node.port}`, () => ping(state, node.port), 15_000, 100);
  }
  const cliTls = state.tls
    ? ['--tls', '--cacert', state.tls.caCert, '--cert', state.tls.clientCert, '--key', state.tls.clientKey, '--sni', state.tls.serverName]
    : [];
  await run(redisCliBin(), [...cliTls, '--cluster', 'create', ...redisEndpoints(state), '--cluster-replicas', '1', '--cluster-yes'], {
    timeoutMs: 60_000,
  });
  await waitForClusterOk(state);
  // Replicas are assigned after the slots: wait until every node sees three of each role.
  await waitFor(
    'three masters and three replicas',
    async () => {
      const roles = await redisRoles(state);
      return roles.filter((r) => r.role === 'replica').length === NODE_COUNT / 2 ? roles : undefined;
    },
    30_000,
    200,
  );
  await waitForReplicasInSync(state);
  writeFileSync(stateFile(runDir), JSON.stringify(state, null, 2));
  return state;
}

export async function stopRedisCluster(state: RedisClusterState): Promise<void> {
  await Promise.all(state.nodes.map((node) => stopRecorded(state.runDir, nodeName(node.index), 5_000)));
}

function requireNode(state: RedisClusterState, index: number): RedisNodeState {
  const node = state.nodes[index];
  if (!node) throw new Error(`no Redis node ${index} (the cluster has ${state.nodes.length})`);
  return node;
}

/** Stops one node (SIGTERM, then SIGKILL after the grace period); its data dir stays. */
export async function stopRedisNode(state: RedisClusterState, index: number, graceMs = 5_000): Promise<void> {
  await stopRecorded(state.runDir, nodeName(requireNode(state, index).index), graceMs);
}

/**
 * Freezes (SIGSTOP) or thaws (SIGCONT) a node's process: a node that neither answers nor closes its
 * connections, as behind a partition, and that keeps its data (the test nodes persist nothing, so a
 * stopped master and replica would come back empty).
 */
export function pauseRedisNode(state: RedisClusterState, index: number, paused: boolean): void {
  const record = readProcessRecord(state.runDir, nodeName(requireNode(state, index).index));
  if (!record || !isRunning(record)) throw new Error(`redis node ${index} is not running`);
  process.kill(record.pid, paused ? 'SIGSTOP' : 'SIGCONT');
}

/** Starts a stopped node again on the same port and directory; it rejoins the cluster. */
export async function restartRedisNode(state: RedisClusterState, index: number): Promise<void> {
  const node = requireNode(state, index);
  const record = readProcessRecord(state.runDir, nodeName(index));
  if (record && isRunning(record)) return;
  startNode(state, node);
  await waitFor(`redis-server on port ${node.port}`, () => ping(state, node.port), 15_000, 100);
  await waitForFullStrength(state);
}

/**
 * Cluster ok, three masters each with a replica in sync: what the next fault test assumes.
 * A restarted node rejoins as a replica only after gossip, so tests wait for this, not for a ping.
 */
export async function waitForFullStrength(state: RedisClusterState, timeoutMs = 60_000): Promise<void> {
  await waitForClusterOk(state, timeoutMs);
  await waitFor(
    'three masters with a replica each',
    async () => {
      const roles = await redisRoles(state);
      const masters = roles.filter((r) => r.role === 'master');
      const covered = masters.filter((m) => roles.some((r) => r.role === 'replica' && r.masterId === m.nodeId));
      return masters.length === NODE_COUNT / 2 && covered.length === masters.length ? true : undefined;
    },
    timeoutMs,
    200,
  );
  await waitForReplicasInSync(state, timeoutMs);
}

/** Current roles, read from CLUSTER NODES on any reachable node. */
export async function redisRoles(state: RedisClusterState): Promise<RedisNodeRole[]> {
  for (const node of state.nodes) {
    if (!(await ping(state, node.port))) continue;
    const client = nodeClient(state, node.port);
    try {
      await client.connect();
      const text = (await client.call('CLUSTER', 'NODES')) as string;
      const roles: RedisNodeRole[] = [];
      for (const line of text.split('\n').filter(Boolean)) {
        const [nodeId, address, flags, masterId] = line.split(' ');
        const port = Number(address?.split('@')[0]?.split(':')[1]);
        const known = state.nodes.find((n) => n.port === port);
        if (!known || !nodeId || !flags || flags.includes('fail')) continue;
        const role = flags.includes('master') ? 'master' : 'replica';
        roles.push({ index: known.index, port, nodeId, role, ...(role === 'replica' && masterId ? { masterId } : {}) });
      }
      return roles.sort((a, b) => a.index - b.index);
    } finally {
      client.disconnect();
    }
  }
  throw new Error('no Redis node is reachable');
}

/**
 * A manual failover (CLUSTER FAILOVER on the replica at `index`): the replica and its master swap
 * roles, and the old master stays up, answering MOVED for the slots it served. Waits until the swap
 * is done and the cluster is ok.
 */
export async function switchOverToReplica(state: RedisClusterState, index: number): Promise<void> {
  await waitForFullStrength(state);
  const swapped = async () => {
    const roles = await redisRoles(state);
    return roles.find((r) => r.index === index)?.role === 'master' && roles.filter((r) => r.role === 'master').length === NODE_COUNT / 2;
  };
  // A manual failover needs the replica in sync, and is dropped silently when it does not finish within
  // Redis' own timeout (5 s): asked again until it takes.
  for (let attempt = 1; !(await swapped()); attempt++) {
    if (attempt > 3) throw new Error(`replica ${index} was not promoted by CLUSTER FAILOVER (3 attempts)`);
    await waitForReplicasInSync(state);
    const client = nodeClient(state, state.nodes[index]!.port);
    try {
      await client.connect();
      await client.call('CLUSTER', 'FAILOVER');
    } finally {
      client.disconnect();
    }
    await waitFor(`replica ${index} promoted by CLUSTER FAILOVER`, async () => ((await swapped()) ? true : undefined), 7_000, 100).catch(
      () => undefined,
    );
  }
  await waitForClusterOk(state);
}

/**
 * A real master failover: stops the master at `index` and waits until its replica has been
 * promoted and the cluster is ok again. Returns the index of the promoted replica.
 */
export async function failOverMaster(state: RedisClusterState, index: number): Promise<number> {
  // A node restarted by an earlier test may still be rejoining as this master's replica.
  await waitForFullStrength(state);
  const before = await redisRoles(state);
  const master = before.find((r) => r.index === index && r.role === 'master');
  if (!master) throw new Error(`Redis node ${index} is not a master`);
  const replica = before.find((r) => r.role === 'replica' && r.masterId === master.nodeId);
  if (!replica) throw new Error(`Redis master ${index} has no replica`);
  await stopRedisNode(state, index, 0);
  await waitFor(
    `replica ${replica.index} promoted`,
    async () => {
      const roles = await redisRoles(state);
      return roles.find((r) => r.index === replica.index)?.role === 'master' ? true : undefined;
    },
    state.nodeTimeoutMs * 10 + 10_000,
    200,
  );
  await waitForClusterOk(state);
  return replica.index;
}
