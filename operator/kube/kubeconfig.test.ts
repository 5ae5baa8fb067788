import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadKubeConfig } from './kubeconfig.ts';

const KUBECONFIG_YAML = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: { server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true }
users:
- name: u
  user: { token: abc }
contexts:
- name: ctx
  context: { cluster: c, user: u, namespace: pools }
current-context: ctx
`;

describe('kube/kubeconfig', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spo-kubeconfig-'));

  it('loads the file named by KUBECONFIG', () => {
    const file = path.join(dir, 'config');
    writeFileSync(file, KUBECONFIG_YAML);
    const kc = loadKubeConfig({ env: { KUBECONFIG: file } });
    expect(kc.getCurrentCluster()?.server).to.equal('https://127.0.0.1:6443');
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).to.equal('pools');
  });

  it('says which KUBECONFIG file is missing', () => {
    expect(() => loadKubeConfig({ env: { KUBECONFIG: path.join(dir, 'nope') } })).to.throw(/KUBECONFIG names missing file\(s\): .*nope/);
  });

  it('says what is missing when neither KUBECONFIG nor in-cluster config is there', () => {
    expect(() => loadKubeConfig({ env: {}, tokenPath: path.join(dir, 'token') })).to.throw(/set KUBECONFIG .*not set.*missing at/);
  });

  it('refuses a kubeconfig without a current cluster', () => {
    const file = path.join(dir, 'empty');
    writeFileSync(file, 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    expect(() => loadKubeConfig({ env: { KUBECONFIG: file } })).to.throw(/no current context with a cluster|cannot load KUBECONFIG/);
  });
});
