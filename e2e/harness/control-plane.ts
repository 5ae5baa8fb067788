// A real Kubernetes control plane without Docker: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (simulated nodes whose pods run), from the
// binaries e2e/cluster/build.sh caches. Loopback only, free ports, one directory per run;
// stops only what it started, in reverse order (the apiserver before etcd).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { binaries, pinnedVersions, type Binaries } from './paths.ts';
import { createPki, kubeconfigYaml, type Pki } from './pki.ts';
import { freePort } from './ports.ts';
import { run, startProcess, stopRecorded, waitFor } from './processes.ts';

export interface ControlPlane {
  runDir: string;
  kubeconfigPath: string;
  server: string;
  etcdUrl: string;
  nodeNames: string[];
  version: string;
}

export interface ControlPlaneOptions {
  nodeCount?: number;
  log?: (line: string) => void;
}

const STOP_ORDER = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];

function requireBinaries(): Binaries {
  const bins = binaries();
  const missing = [
    bins.etcd,
    bins.kubeApiserver,
    bins.kubeControllerManager,
    bins.kubeScheduler,
    bins.kubectl,
    bins.kwok,
    bins.kwokStages,
  ].filter((b) => !existsSync(b));
  if (missing.length > 0) {
    throw new Error(`control plane binaries missing (${missing.join(', ')}): run 'bash e2e/cluster/build.sh' (scripts/bootstrap.sh does)`);
  }
  return bins;
}

function httpGet(url: string, options: { ca?: Buffer; token?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const request = lib.get(
      url,
      {
        ...(options.ca ? { ca: options.ca } : {}),
        headers: options.token ? { Authorization: `Bearer ${options.token}` } : {},
        timeout: 2000,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

function nodeManifest(name: string): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: ${name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec: {}
status:
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
`;
}

export async function startControlPlane(runDir: string, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? (() => undefined);
  const bins = requireBinaries();
  const { K8S_VERSION } = pinnedVersions();
  const dir = path.join(runDir, 'kube');
  mkdirSync(dir, { recursive: true });
  const pki: Pki = await createPki(path.join(dir, 'pki'));
  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const server = `https://127.0.0.1:${apiPort}`;
  const ca = readFileSync(pki.caCert);

  log(`starting etcd on ${etcdUrl}`);
  startProcess({
    name: 'etcd',
    bin: bins.etcd,
    runDir,
    args: [
      '--name',
      'default',
      '--data-dir',
      path.join(dir, 'etcd'),
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync',
      '--log-level',
      'warn',
    ],
  });
  await waitFor('etcd /health', async () => (await httpGet(`${etcdUrl}/health`)).body.includes('true') || undefined, 30_000);

  log(`starting kube-apiserver ${K8S_VERSION} on ${server}`);
  startProcess({
    name: 'kube-apiserver',
    bin: bins.kubeApiserver,
    runDir,
    args: [
      '--etcd-servers',
      etcdUrl,
      '--bind-address',
      '127.0.0.1',
      '--advertise-address',
      '127.0.0.1',
      '--secure-port',
      String(apiPort),
      '--tls-cert-file',
      pki.servingCert,
      '--tls-private-key-file',
      pki.servingKey,
      '--client-ca-file',
      pki.caCert,
      '--token-auth-file',
      pki.tokenFile,
      '--authorization-mode',
      'Node,RBAC',
      '--service-account-issuer',
      'https://kubernetes.default.svc',
      '--service-account-key-file',
      pki.serviceAccountKey,
      '--service-account-signing-key-file',
      pki.serviceAccountKey,
      '--service-cluster-ip-range',
      '10.96.0.0/16',
      '--allow-privileged',
      '--profiling=false',
      '--v',
      '1',
    ],
  });
  await waitFor(
    'kube-apiserver /readyz',
    async () => (await httpGet(`${server}/readyz`, { ca, token: pki.adminToken })).status === 200 || undefined,
    60_000,
    250,
  );

  const kubeconfigPath = path.join(runDir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server, pki), { mode: 0o600 });
  const kubeconfigArgs = [
    '--kubeconfig',
    kubeconfigPath,
    '--authentication-kubeconfig',
    kubeconfigPath,
    '--authorization-kubeconfig',
    kubeconfigPath,
  ];

  log('starting kube-controller-manager and kube-scheduler');
  startProcess({
    name: 'kube-controller-manager',
    bin: bins.kubeControllerManager,
    runDir,
    args: [
      ...kubeconfigArgs,
      '--service-account-private-key-file',
      pki.serviceAccountKey,
      '--root-ca-file',
      pki.caCert,
      '--use-service-account-credentials',
      '--leader-elect=false',
      '--bind-address',
      '127.0.0.1',
      '--secure-port',
      '0',
      '--controllers',
      '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
      '--v',
      '1',
    ],
  });
  startProcess({
    name: 'kube-scheduler',
    bin: bins.kubeScheduler,
    runDir,
    args: [...kubeconfigArgs, '--leader-elect=false', '--bind-address', '127.0.0.1', '--secure-port', '0', '--v', '1'],
  });

  const kubectl = (args: string[], timeoutMs?: number) =>
    run(bins.kubectl, ['--kubeconfig', kubeconfigPath, ...args], timeoutMs ? { timeoutMs } : {});
  const nodeNames = Array.from({ length: Math.max(2, options.nodeCount ?? 3) }, (_, i) => `kwok-node-${i + 1}`);
  log(`starting kwok and creating nodes ${nodeNames.join(', ')}`);
  // A node lease left by an earlier kwok would make this one skip the node as read-only.
  await kubectl(['delete', 'leases', '--all', '-n', 'kube-node-lease', '--ignore-not-found']);
  startProcess({
    name: 'kwok',
    bin: bins.kwok,
    runDir,
    args: ['--kubeconfig', kubeconfigPath, '--manage-all-nodes=true', '-c', bins.kwokStages, '--node-lease-duration-seconds', '40'],
  });
  const nodesFile = path.join(dir, 'nodes.yaml');
  writeFileSync(nodesFile, nodeNames.map(nodeManifest).join('---\n'));
  await kubectl(['apply', '-f', nodesFile]);
  await kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=90s'], 100_000);
  // Pods are refused until the service account controller has made the default account.
  await waitFor(
    'default service account',
    async () => (await kubectl(['get', 'serviceaccount', 'default', '-o', 'name'])).includes('default') || undefined,
    60_000,
    250,
  );

  const plane: ControlPlane = { runDir, kubeconfigPath, server, etcdUrl, nodeNames, version: K8S_VERSION };
  writeFileSync(path.join(runDir, 'control-plane.json'), JSON.stringify(plane, null, 2));
  return plane;
}

export async function stopControlPlane(plane: Pick<ControlPlane, 'runDir'>, log: (line: string) => void = () => undefined): Promise<void> {
  for (const name of STOP_ORDER) {
    log(`stopping ${name}`);
    await stopRecorded(plane.runDir, name, 15_000);
  }
}
