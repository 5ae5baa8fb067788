// The mocha hooks the migration, faults and drain suites share: one MigrationEnv (operator,
// LocalKubelet, CRDs) for the whole describe block, and per test a pool and its traffic that
// afterEach stops and deletes even when the test failed, so the next test starts clean.
import { deletePool, setupMigrationEnv, teardownMigrationEnv, type MigrationEnv, type TestPool } from './migration-env.ts';

export interface MigrationSuiteState {
  /** The suite's environment, set up by the `before` hook. */
  readonly env: MigrationEnv;
  /** A test sets it as soon as it exists, so that afterEach deletes it. */
  pool: TestPool | undefined;
  /** A test sets it before starting it, so that afterEach stops it (before the pool goes). */
  traffic: { stop(): Promise<unknown> } | undefined;
}

export interface MigrationSuiteOptions {
  /** More per-test cleanup, run in afterEach after the traffic stopped and before the pool is deleted. */
  beforePoolDelete?: (env: MigrationEnv) => Promise<void>;
}

/** Registers before/after/afterEach on the current describe block; call it inside the describe. */
export function migrationSuite(options: MigrationSuiteOptions = {}): MigrationSuiteState {
  let env: MigrationEnv | undefined;
  const state: MigrationSuiteState = {
    get env(): MigrationEnv {
      if (!env) throw new Error('the migration environment is not set up (its before hook failed or has not run)');
      return env;
    },
    pool: undefined,
    traffic: undefined,
  };

  before(async function () {
    this.timeout(120_000);
    env = await setupMigrationEnv();
  });

  after(async function () {
    this.timeout(60_000);
    await teardownMigrationEnv(env);
  });

  afterEach(async function () {
    this.timeout(60_000);
    await state.traffic?.stop();
    state.traffic = undefined;
    await options.beforePoolDelete?.(env!);
    await deletePool(env!, state.pool);
    state.pool = undefined;
  });

  return state;
}
