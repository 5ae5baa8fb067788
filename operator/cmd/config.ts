// The operator's configuration: command-line flags first, then SPO_* environment variables,
// then defaults. Every bad value is reported at once, naming the flag or variable and what was
// expected, before anything starts.
import { DEFAULT_LEASE_DURATION_MS, DEFAULT_RENEW_DEADLINE_MS, DEFAULT_RETRY_PERIOD_MS } from '../kube/leader-election-timing.ts';
import { parseLabels, parsePeers, type WorkerNetworkPolicySettings } from '../controller/pool/network-policy.ts';

const LEASE_S = DEFAULT_LEASE_DURATION_MS / 1000;
const RENEW_S = DEFAULT_RENEW_DEADLINE_MS / 1000;
const RETRY_S = DEFAULT_RETRY_PERIOD_MS / 1000;
/** Default of --resync-seconds: every pool is re-enqueued this often (each pool at its own jittered time). */
export const DEFAULT_RESYNC_SECONDS = 600;

export const CONTROLLERS = ['pool', 'migration', 'drain'] as const;
export type ControllerName = (typeof CONTROLLERS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface OperatorConfig {
  leaderElect: boolean;
  /** 0: pick a free port (and log it). */
  metricsPort: number;
  metricsHost: string;
  /** Watch scope; empty: all namespaces. */
  namespace: string;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  /** This process's identity in the Lease. */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logLevel: LogLevel;
  concurrency: number;
  resyncMs: number;
  autoscaleIntervalMs: number;
  shutdownTimeoutMs: number;
  controllers: ControllerName[];
  /** Generate each pool's worker NetworkPolicy (network-policy.ts); undefined: none. */
  workerNetworkPolicy: WorkerNetworkPolicySettings | undefined;
  /**
   * The operator process loads only the API groups of @kubernetes/client-node it uses
   * (kube/lean-client.ts); false loads the package whole (a fallback, and the memory benchmark's baseline).
   */
  leanKubeClient: boolean;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid operator configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

interface FlagSpec {
  flag: string;
  env?: string;
  boolean?: boolean;
}

const FLAGS = {
  leaderElect: { flag: 'leader-elect', env: 'SPO_LEADER_ELECT', boolean: true },
  metricsPort: { flag: 'metrics-port', env: 'SPO_METRICS_PORT' },
  metricsHost: { flag: 'metrics-host', env: 'SPO_METRICS_HOST' },
  namespace: { flag: 'namespace', env: 'SPO_NAMESPACE' },
  leaderElectionNamespace: { flag: 'leader-election-namespace', env: 'SPO_LEADER_ELECTION_NAMESPACE' },
  leaderElectionId: { flag: 'leader-election-id', env: 'SPO_LEADER_ELECTION_ID' },
  identity: { flag: 'identity', env: 'SPO_POD_NAME' },
  leaseDuration: { flag: 'lease-duration-seconds', env: 'SPO_LEASE_DURATION_SECONDS' },
  renewDeadline: { flag: 'renew-deadline-seconds', env: 'SPO_RENEW_DEADLINE_SECONDS' },
  retryPeriod: { flag: 'retry-period-seconds', env: 'SPO_RETRY_PERIOD_SECONDS' },
  logLevel: { flag: 'log-level', env: 'SPO_LOG_LEVEL' },
  concurrency: { flag: 'concurrency', env: 'SPO_CONCURRENCY' },
  resync: { flag: 'resync-seconds', env: 'SPO_RESYNC_SECONDS' },
  autoscaleInterval: { flag: 'autoscale-interval-seconds', env: 'SPO_AUTOSCALE_INTERVAL_SECONDS' },
  shutdownTimeout: { flag: 'shutdown-timeout-seconds', env: 'SPO_SHUTDOWN_TIMEOUT_SECONDS' },
  controllers: { flag: 'controllers', env: 'SPO_CONTROLLERS' },
  workerNetworkPolicy: { flag: 'worker-network-policy', env: 'SPO_WORKER_NETWORK_POLICY', boolean: true },
  operatorNamespace: { flag: 'operator-namespace', env: 'SPO_POD_NAMESPACE' },
  operatorPodLabels: { flag: 'operator-pod-labels', env: 'SPO_OPERATOR_POD_LABELS' },
  workerNetworkPolicyExtraPeers: { flag: 'worker-network-policy-extra-peers', env: 'SPO_WORKER_NETWORK_POLICY_EXTRA_PEERS' },
  leanKubeClient: { flag: 'lean-kube-client', env: 'SPO_LEAN_KUBE_CLIENT', boolean: true },
} satisfies Record<string, FlagSpec>;

export const USAGE = `usage: node operator/cmd/operator.ts [flags]
  --leader-elect                      run leader election on a Lease (SPO_LEADER_ELECT)
  --metrics-port=N                    /metrics, /healthz, /readyz port; 0 = a free port (SPO_METRICS_PORT, 9090)
  --metrics-host=ADDR                 listen address (SPO_METRICS_HOST, 0.0.0.0)
  --namespace=NS                      watch one namespace; empty = all (SPO_NAMESPACE)
  --leader-election-namespace=NS      namespace of the Lease (SPO_LEADER_ELECTION_NAMESPACE; default the pod namespace)
  --leader-election-id=NAME           name of the Lease (SPO_LEADER_ELECTION_ID, session-pool-operator)
  --identity=NAME                     identity in the Lease (SPO_POD_NAME; default hostname-pid)
  --lease-duration-seconds=N          (SPO_LEASE_DURATION_SECONDS, ${LEASE_S})
  --renew-deadline-seconds=N          (SPO_RENEW_DEADLINE_SECONDS, ${RENEW_S})
  --retry-period-seconds=N            (SPO_RETRY_PERIOD_SECONDS, ${RETRY_S})
  --log-level=LEVEL                   trace|debug|info|warn|error|fatal|silent (SPO_LOG_LEVEL, info)
  --concurrency=N                     pools reconciled in parallel (SPO_CONCURRENCY, 4)
  --resync-seconds=N                  re-enqueue every pool this often (SPO_RESYNC_SECONDS, ${DEFAULT_RESYNC_SECONDS})
  --autoscale-interval-seconds=N      autoscaled pools: counts read at least this often (SPO_AUTOSCALE_INTERVAL_SECONDS, 15)
  --shutdown-timeout-seconds=N        wait for reconciles in flight on SIGTERM (SPO_SHUTDOWN_TIMEOUT_SECONDS, 25)
  --controllers=LIST                  comma list of ${CONTROLLERS.join(', ')} (SPO_CONTROLLERS, all)
  --worker-network-policy             generate each pool's worker NetworkPolicy (SPO_WORKER_NETWORK_POLICY, false);
                                      needs --operator-namespace and --operator-pod-labels
  --operator-namespace=NS             namespace of the operator's pods (SPO_POD_NAMESPACE)
  --operator-pod-labels=K=V,...       labels of the operator's pods, admitted to the workers (SPO_OPERATOR_POD_LABELS)
  --worker-network-policy-extra-peers=JSON
                                      NetworkPolicyPeers admitted to every pool's workers
                                      (SPO_WORKER_NETWORK_POLICY_EXTRA_PEERS, [])
  --no-lean-kube-client               load @kubernetes/client-node whole, not only the API groups used
                                      (SPO_LEAN_KUBE_CLIENT, true)`;

export interface ParseInput {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  hostname?: string;
  pid?: number;
}

export class HelpRequested extends Error {
  constructor() {
    super(USAGE);
    this.name = 'HelpRequested';
  }
}

/** Parses flags (`--name=value`, `--name value`, `--flag`, `--no-flag`) and environment. */
export function parseOperatorConfig(input: ParseInput = {}): OperatorConfig {
  const argv = input.argv ?? process.argv.slice(2);
  const env = input.env ?? process.env;
  const problems: string[] = [];
  const known = new Map<string, FlagSpec>(Object.values(FLAGS).map((f) => [f.flag, f]));
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') throw new HelpRequested();
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument '${arg}' (flags look like --name=value)`);
      continue;
    }
    const body = arg.slice(2);
    const eq = body.indexOf('=');
    let name = eq === -1 ? body : body.slice(0, eq);
    let value: string | undefined = eq === -1 ? undefined : body.slice(eq + 1);
    let spec = known.get(name);
    if (!spec && name.startsWith('no-') && known.get(name.slice(3))?.boolean && value === undefined) {
      name = name.slice(3);
      spec = known.get(name);
      value = 'false';
    }
    if (!spec) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (value === undefined) {
      if (spec.boolean) value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('--')) {
          problems.push(`flag --${name} needs a value`);
          continue;
        }
        value = next;
        i++;
      }
    }
    flags.set(name, value);
  }

  const raw = (spec: FlagSpec): { value: string; source: string } | undefined => {
    const fromFlag = flags.get(spec.flag);
    if (fromFlag !== undefined) return { value: fromFlag.trim(), source: `--${spec.flag}` };
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv !== undefined && fromEnv.trim() !== '') return { value: fromEnv.trim(), source: spec.env ?? '' };
    return undefined;
  };
  const text = (spec: FlagSpec, fallback: string): string => raw(spec)?.value ?? fallback;
  const integer = (spec: FlagSpec, fallback: number, min: number, max: number): number => {
    const r = raw(spec);
    if (!r) return fallback;
    if (!/^\d+$/.test(r.value)) {
      problems.push(`${r.source}='${r.value}' is not a whole number`);
      return fallback;
    }
    const n = Number(r.value);
    if (n < min || n > max) problems.push(`${r.source}=${n} is out of range [${min}, ${max}]`);
    return n;
  };
  const bool = (spec: FlagSpec, fallback: boolean): boolean => {
    const r = raw(spec);
    if (!r) return fallback;
    const v = r.value.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    problems.push(`${r.source}='${r.value}' is not a boolean (true/false, 1/0, yes/no, on/off)`);
    return fallback;
  };
  const dnsName = (spec: FlagSpec, value: string, what: string): void => {
    if (value && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(value)) {
      problems.push(`${raw(spec)?.source ?? spec.flag}='${value}' is not a valid ${what} (lowercase letters, digits, '-' and '.')`);
    }
  };

  const namespace = text(FLAGS.namespace, '');
  dnsName(FLAGS.namespace, namespace, 'namespace');
  const validNamespace = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(namespace) ? namespace : '';
  const leaderElectionNamespace = text(FLAGS.leaderElectionNamespace, env.SPO_POD_NAMESPACE?.trim() || validNamespace || 'default');
  dnsName(FLAGS.leaderElectionNamespace, leaderElectionNamespace, 'namespace');
  // SPO_LEADER_ELECTION_LEASE_NAME: the name the Helm chart sets.
  const leaderElectionId = text(FLAGS.leaderElectionId, env.SPO_LEADER_ELECTION_LEASE_NAME?.trim() || 'session-pool-operator');
  dnsName(FLAGS.leaderElectionId, leaderElectionId, 'Lease name');
  const identity = text(FLAGS.identity, `${input.hostname ?? 'operator'}-${input.pid ?? process.pid}`);
  const leaseSeconds = integer(FLAGS.leaseDuration, LEASE_S, 2, 300);
  const renewSeconds = integer(FLAGS.renewDeadline, RENEW_S, 1, 299);
  const retrySeconds = integer(FLAGS.retryPeriod, RETRY_S, 1, 298);
  if (!(leaseSeconds > renewSeconds && renewSeconds > retrySeconds)) {
    problems.push(
      `leader election needs lease duration (${leaseSeconds}) > renew deadline (${renewSeconds}) > retry period (${retrySeconds})`,
    );
  }
  const logLevelRaw = text(FLAGS.logLevel, 'info').toLowerCase();
  const logLevel = (LOG_LEVELS as readonly string[]).includes(logLevelRaw) ? (logLevelRaw as LogLevel) : 'info';
  if (logLevel !== logLevelRaw) problems.push(`${raw(FLAGS.logLevel)?.source}='${logLevelRaw}' is not one of ${LOG_LEVELS.join(', ')}`);
  const controllersRaw = text(FLAGS.controllers, CONTROLLERS.join(','));
  const controllers: ControllerName[] = [];
  for (const c of controllersRaw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if ((CONTROLLERS as readonly string[]).includes(c)) controllers.push(c as ControllerName);
    else problems.push(`${raw(FLAGS.controllers)?.source}: unknown controller '${c}' (known: ${CONTROLLERS.join(', ')})`);
  }
  if (controllers.length === 0 && !problems.some((p) => p.includes('controller')))
    problems.push('at least one controller must run (--controllers)');

  let workerNetworkPolicy: WorkerNetworkPolicySettings | undefined;
  if (bool(FLAGS.workerNetworkPolicy, false)) {
    const source = (spec: FlagSpec) => raw(spec)?.source ?? `--${spec.flag}`;
    const operatorNamespace = text(FLAGS.operatorNamespace, '');
    if (!operatorNamespace)
      problems.push('--worker-network-policy needs the operator namespace (--operator-namespace or SPO_POD_NAMESPACE)');
    else dnsName(FLAGS.operatorNamespace, operatorNamespace, 'namespace');
    const operatorPodLabels = parseLabels(text(FLAGS.operatorPodLabels, ''), problems, source(FLAGS.operatorPodLabels));
    if (
      Object.keys(operatorPodLabels).length === 0 &&
      !problems.some((p) => p.includes('operator-pod-labels') || p.includes('SPO_OPERATOR_POD_LABELS'))
    )
      problems.push("--worker-network-policy needs the operator's pod labels (--operator-pod-labels or SPO_OPERATOR_POD_LABELS)");
    const extraPeers = parsePeers(text(FLAGS.workerNetworkPolicyExtraPeers, '[]'), problems, source(FLAGS.workerNetworkPolicyExtraPeers));
    workerNetworkPolicy = { operatorNamespace, operatorPodLabels, extraPeers };
  }

  const config: OperatorConfig = {
    leaderElect: bool(FLAGS.leaderElect, false),
    metricsPort: integer(FLAGS.metricsPort, 9090, 0, 65535),
    metricsHost: text(FLAGS.metricsHost, '0.0.0.0'),
    namespace,
    leaderElectionNamespace,
    leaderElectionId,
    identity,
    leaseDurationMs: leaseSeconds * 1000,
    renewDeadlineMs: renewSeconds * 1000,
    retryPeriodMs: retrySeconds * 1000,
    logLevel,
    concurrency: integer(FLAGS.concurrency, 4, 1, 64),
    resyncMs: integer(FLAGS.resync, DEFAULT_RESYNC_SECONDS, 0, 86400) * 1000,
    autoscaleIntervalMs: integer(FLAGS.autoscaleInterval, 15, 1, 3600) * 1000,
    shutdownTimeoutMs: integer(FLAGS.shutdownTimeout, 25, 1, 3600) * 1000,
    controllers,
    workerNetworkPolicy,
    leanKubeClient: bool(FLAGS.leanKubeClient, true),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
