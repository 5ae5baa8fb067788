// The pool's worker admin token: 32 random bytes (64 hex characters) in a Secret
// `<pool>-admin-token` (key `token`), created once by the operator, owned by the pool (garbage
// collected with it), immutable, never rotated silently. The workers get it through a
// secretKeyRef (desired.ts, SPO_ADMIN_TOKEN); the operator reads it to call their /admin/*
// routes (worker-admin.ts). The token is never logged and never put in an Event or status.
// Pure builders and checks here; AdminTokens is the thin I/O part with a per-pool memo, so a
// reconcile reads the Secret only at first sight of the pool and every refresh interval.
import { randomBytes } from 'node:crypto';
import type { V1Deployment, V1Secret } from '@kubernetes/client-node';
import type { SessionPool } from '../../api/index.ts';
import { isConflict, isNotFound } from '../../kube/errors.ts';
import { MIN_ADMIN_TOKEN_LENGTH } from '../../worker/admin-auth.ts';
import type { PoolApi } from './client.ts';
import { childMetadata } from './desired.ts';
import { ADMIN_TOKEN_KEY, ADMIN_TOKEN_SECRET_ANNOTATION, adminTokenSecretName } from './names.ts';

/** A fresh admin token: 32 random bytes, hex. */
export function newAdminToken(): string {
  return randomBytes(32).toString('hex');
}

export function desiredAdminTokenSecret(pool: SessionPool, token: string): V1Secret {
  const name = pool.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMetadata(pool, adminTokenSecretName(name)),
    type: 'Opaque',
    // Immutable: a new token only comes from deleting the Secret (the operator then creates another).
    immutable: true,
    data: { [ADMIN_TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
  };
}

/** The Deployment with the token Secret's uid on its pod template: a new Secret (new token) rolls the workers. */
export function withAdminTokenSecret(deployment: V1Deployment, secretUid: string): V1Deployment {
  const template = deployment.spec?.template;
  if (!deployment.spec || !template) return deployment;
  return {
    ...deployment,
    spec: {
      ...deployment.spec,
      template: {
        ...template,
        metadata: { ...template.metadata, annotations: { ...template.metadata?.annotations, [ADMIN_TOKEN_SECRET_ANNOTATION]: secretUid } },
      },
    },
  };
}

export type AdminTokenRead = { ok: true; token: string; secretUid: string } | { ok: false; problem: string };

/**
 * The token of a Secret found under the pool's admin token name, if the operator may trust it:
 * the pool controls the Secret (a Secret of that name that someone else made is not used) and
 * the token is long enough for the workers to accept it.
 */
export function readAdminTokenSecret(pool: SessionPool, secret: V1Secret): AdminTokenRead {
  const name = secret.metadata?.name ?? '';
  const owned = (secret.metadata?.ownerReferences ?? []).some((r) => r.controller === true && r.uid === pool.metadata.uid);
  if (!owned)
    return { ok: false, problem: `Secret ${name} exists but is not controlled by this SessionPool; delete it or rename the pool` };
  const encoded = secret.data?.[ADMIN_TOKEN_KEY];
  const token = encoded === undefined ? '' : Buffer.from(encoded, 'base64').toString('utf8');
  if (token.length < MIN_ADMIN_TOKEN_LENGTH || /\s/.test(token))
    return { ok: false, problem: `Secret ${name} has no usable key '${ADMIN_TOKEN_KEY}'; delete it and the operator creates a new one` };
  return { ok: true, token, secretUid: secret.metadata?.uid ?? '' };
}

export class AdminTokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AdminTokenError';
  }
}

interface Memo {
  poolUid: string;
  token: string;
  secretUid: string;
  readAt: number;
}

export interface AdminTokenResult {
  token: string;
  secretUid: string;
  /** True when this call created the Secret. */
  created: boolean;
}

/** Re-read a known Secret this often (a deleted Secret is recreated within this time). */
export const ADMIN_TOKEN_REFRESH_MS = 10 * 60_000;

export class AdminTokens {
  private readonly api: Pick<PoolApi, 'readSecret' | 'createSecret'>;
  private readonly now: () => number;
  private readonly refreshMs: number;
  private readonly memo = new Map<string, Memo>();

  constructor(api: Pick<PoolApi, 'readSecret' | 'createSecret'>, now: () => number, refreshMs = ADMIN_TOKEN_REFRESH_MS) {
    this.api = api;
    this.now = now;
    this.refreshMs = refreshMs;
  }

  forget(key: string): void {
    this.memo.delete(key);
  }

  /** The pool's token: from the memo, else the Secret, else a new Secret. Throws AdminTokenError. */
  async get(key: string, pool: SessionPool): Promise<AdminTokenResult> {
    const known = this.memo.get(key);
    const now = this.now();
    if (known && known.poolUid === pool.metadata.uid && now - known.readAt < this.refreshMs)
      return { token: known.token, secretUid: known.secretUid, created: false };
    const namespace = pool.metadata.namespace ?? 'default';
    const name = adminTokenSecretName(pool.metadata.name ?? '');
    let created = false;
    let secret: V1Secret;
    try {
      secret = await this.api.readSecret(namespace, name);
    } catch (err) {
      // A refresh that fails for another reason than 404 keeps the token known (tried again next time).
      if (!isNotFound(err) && known && known.poolUid === pool.metadata.uid)
        return { token: known.token, secretUid: known.secretUid, created: false };
      if (!isNotFound(err)) throw new AdminTokenError(`cannot read Secret ${name}`, { cause: err });
      try {
        secret = await this.api.createSecret(desiredAdminTokenSecret(pool, newAdminToken()));
        created = true;
      } catch (createErr) {
        // Another writer (an older leader) created it meanwhile: use theirs.
        if (!isConflict(createErr)) throw new AdminTokenError(`cannot create Secret ${name}`, { cause: createErr });
        secret = await this.api.readSecret(namespace, name);
      }
    }
    const read = readAdminTokenSecret(pool, secret);
    if (!read.ok) {
      this.memo.delete(key);
      throw new AdminTokenError(read.problem);
    }
    this.memo.set(key, { poolUid: pool.metadata.uid ?? '', token: read.token, secretUid: read.secretUid, readAt: now });
    return { token: read.token, secretUid: read.secretUid, created };
  }
}
