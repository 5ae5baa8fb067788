// Defaulting and schema checks in TypeScript, from the same TypeBox schemas the CRDs are
// generated from: unit tests of reconcile logic build fully defaulted specs with these, as the
// apiserver would. CEL rules (x-kubernetes-validations) are only enforced by the apiserver.
import Value from 'typebox/value';
import type { TSchema } from 'typebox';
import { API_VERSION } from './meta.ts';
import { SESSION_POOL_KIND, SessionPoolSpecSchema, type SessionPool, type SessionPoolSpec } from './session-pool.ts';
import {
  SESSION_MIGRATION_KIND,
  SessionMigrationSpecSchema,
  type SessionMigration,
  type SessionMigrationSpec,
} from './session-migration.ts';

/** Input shape: any field may be left out (defaults fill it in; a missing required field fails the check). */
export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export class SchemaValidationError extends Error {
  readonly errors: string[];
  constructor(what: string, errors: string[]) {
    super(`invalid ${what}: ${errors.join('; ')}`);
    this.name = 'SchemaValidationError';
    this.errors = errors;
  }
}

/** Schema errors of a value, as `path: message` (empty when valid). */
export function schemaErrors(schema: TSchema, value: unknown): string[] {
  return [...Value.Errors(schema, value)].map((error) => `${error.instancePath || '/'}: ${error.message}`);
}

function defaulted<T>(schema: TSchema, what: string, input: unknown): T {
  const value = Value.Default(schema, structuredClone(input));
  const errors = schemaErrors(schema, value);
  if (errors.length > 0) throw new SchemaValidationError(what, errors);
  return value as T;
}

/** A SessionPool spec with every default applied, as read back from the apiserver. Throws SchemaValidationError. */
export function defaultSessionPoolSpec(input: DeepPartial<SessionPoolSpec>): SessionPoolSpec {
  return defaulted<SessionPoolSpec>(SessionPoolSpecSchema, 'SessionPool spec', input);
}

/** A SessionMigration spec with every default applied. Throws SchemaValidationError. */
export function defaultSessionMigrationSpec(input: DeepPartial<SessionMigrationSpec>): SessionMigrationSpec {
  return defaulted<SessionMigrationSpec>(SessionMigrationSpecSchema, 'SessionMigration spec', input);
}

export function newSessionPool(name: string, namespace: string, spec: DeepPartial<SessionPoolSpec>): SessionPool {
  return { apiVersion: API_VERSION, kind: SESSION_POOL_KIND, metadata: { name, namespace }, spec: defaultSessionPoolSpec(spec) };
}

export function newSessionMigration(name: string, namespace: string, spec: DeepPartial<SessionMigrationSpec>): SessionMigration {
  return { apiVersion: API_VERSION, kind: SESSION_MIGRATION_KIND, metadata: { name, namespace }, spec: defaultSessionMigrationSpec(spec) };
}
