import { expect } from 'chai';
import type { V1Secret } from '@kubernetes/client-node';
import { newSessionPool, type SessionPool } from '../../api/index.ts';
import {
  AdminTokenError,
  AdminTokens,
  desiredAdminTokenSecret,
  newAdminToken,
  readAdminTokenSecret,
  withAdminTokenSecret,
} from './admin-token.ts';
import { desiredDeployment } from './desired.ts';

function pool(uid = 'uid-1'): SessionPool {
  const p = newSessionPool('web', 'ns1', { replicas: 1, worker: { image: 'img:1' }, store: { endpoints: ['r:1'] } });
  p.metadata.uid = uid;
  return p;
}

const notFound = () => Object.assign(new Error('not found'), { code: 404 });
const conflict = () => Object.assign(new Error('exists'), { code: 409 });

function fakeApi() {
  const secrets = new Map<string, V1Secret>();
  const calls: string[] = [];
  let uid = 0;
  return {
    secrets,
    calls,
    api: {
      readSecret: async (ns: string, name: string): Promise<V1Secret> => {
        calls.push(`read ${ns}/${name}`);
        const s = secrets.get(`${ns}/${name}`);
        if (!s) throw notFound();
        return s;
      },
      createSecret: async (secret: V1Secret): Promise<V1Secret> => {
        const id = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
        calls.push(`create ${id}`);
        if (secrets.has(id)) throw conflict();
        const stored = { ...secret, metadata: { ...secret.metadata, uid: `s-${++uid}` } };
        secrets.set(id, stored);
        return stored;
      },
    },
  };
}

describe('pool/admin-token', () => {
  it('makes 32 random bytes, hex, different every time', () => {
    const a = newAdminToken();
    expect(a).to.match(/^[0-9a-f]{64}$/);
    expect(newAdminToken()).to.not.equal(a);
  });

  it('builds an immutable Secret owned by the pool, the token base64 under key "token"', () => {
    const s = desiredAdminTokenSecret(pool(), 'f'.repeat(64));
    expect(s.metadata?.name).to.equal('web-admin-token');
    expect(s.metadata?.namespace).to.equal('ns1');
    expect(s.immutable).to.equal(true);
    expect(s.metadata?.ownerReferences?.[0]).to.include({ kind: 'SessionPool', uid: 'uid-1', controller: true });
    expect(Buffer.from(s.data?.token ?? '', 'base64').toString()).to.equal('f'.repeat(64));
    expect(s).to.not.have.property('stringData');
  });

  it('trusts only a Secret the pool controls, with a usable token', () => {
    const good = desiredAdminTokenSecret(pool(), 'a'.repeat(64));
    expect(readAdminTokenSecret(pool(), good)).to.deep.include({ ok: true, token: 'a'.repeat(64) });
    const foreign = readAdminTokenSecret(pool('other-uid'), good);
    expect(foreign.ok).to.equal(false);
    expect(JSON.stringify(foreign)).to.match(/not controlled by this SessionPool/);
    expect(JSON.stringify(foreign)).to.not.include('a'.repeat(64));
    const short = desiredAdminTokenSecret(pool(), 'short');
    expect(readAdminTokenSecret(pool(), short).ok).to.equal(false);
  });

  it('creates the Secret once, then answers from memory until the refresh interval', async () => {
    const f = fakeApi();
    let now = 0;
    const tokens = new AdminTokens(f.api, () => now, 1000);
    const first = await tokens.get('ns1/web', pool());
    expect(first.created).to.equal(true);
    expect(f.calls).to.deep.equal(['read ns1/web-admin-token', 'create ns1/web-admin-token']);
    const again = await tokens.get('ns1/web', pool());
    expect(again).to.deep.equal({ ...first, created: false });
    expect(f.calls).to.have.length(2);
    now = 1001;
    const refreshed = await tokens.get('ns1/web', pool());
    expect(refreshed.token).to.equal(first.token);
    expect(f.calls).to.deep.equal(['read ns1/web-admin-token', 'create ns1/web-admin-token', 'read ns1/web-admin-token']);
  });

  it('never replaces an existing token; a deleted Secret is recreated (new uid) at the next refresh', async () => {
    const f = fakeApi();
    let now = 0;
    const tokens = new AdminTokens(f.api, () => now, 1000);
    const first = await tokens.get('ns1/web', pool());
    f.secrets.clear();
    now = 2000;
    const second = await tokens.get('ns1/web', pool());
    expect(second.created).to.equal(true);
    expect(second.token).to.not.equal(first.token);
    expect(second.secretUid).to.not.equal(first.secretUid);
  });

  it('keeps a known token when a refresh read fails for another reason than 404', async () => {
    const f = fakeApi();
    let now = 0;
    let down = false;
    const api = {
      ...f.api,
      readSecret: async (ns: string, name: string) => {
        if (down) throw Object.assign(new Error('unavailable'), { code: 503 });
        return f.api.readSecret(ns, name);
      },
    };
    const tokens = new AdminTokens(api, () => now, 1000);
    const first = await tokens.get('ns1/web', pool());
    down = true;
    now = 5000;
    expect(await tokens.get('ns1/web', pool())).to.deep.equal({ ...first, created: false });
    const fresh = new AdminTokens(api, () => now, 1000);
    const error = await fresh.get('ns1/web', pool()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(AdminTokenError);
  });

  it('uses the Secret another writer created between its read and its create', async () => {
    const f = fakeApi();
    const theirs = {
      ...desiredAdminTokenSecret(pool(), 'b'.repeat(64)),
      metadata: { ...desiredAdminTokenSecret(pool(), 'x').metadata, uid: 'theirs' },
    };
    const api = {
      ...f.api,
      readSecret: async (ns: string, name: string) => {
        if (f.calls.length === 0) {
          f.calls.push('read');
          f.secrets.set(`${ns}/${name}`, theirs);
          throw notFound();
        }
        return f.api.readSecret(ns, name);
      },
    };
    const got = await new AdminTokens(api, () => 0).get('ns1/web', pool());
    expect(got).to.deep.equal({ token: 'b'.repeat(64), secretUid: 'theirs', created: false });
  });

  it('refuses a Secret of that name it does not control', async () => {
    const f = fakeApi();
    f.secrets.set('ns1/web-admin-token', desiredAdminTokenSecret(pool('someone-else'), 'c'.repeat(64)));
    const error = await new AdminTokens(f.api, () => 0).get('ns1/web', pool()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(AdminTokenError);
    expect(String(error)).to.not.include('c'.repeat(64));
  });

  it("stamps the Secret's uid on the pod template only", () => {
    const d = withAdminTokenSecret(desiredDeployment(pool(), 1), 'secret-uid');
    expect(d.spec?.template.metadata?.annotations?.['dspex.io/admin-token-secret-uid']).to.equal('secret-uid');
    expect(d.metadata?.annotations?.['dspex.io/admin-token-secret-uid']).to.equal(undefined);
  });
});
