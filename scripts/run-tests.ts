// Runs the test tiers. Unit tests need nothing; integration and end-to-end tests get a real
// Redis Cluster and a real control plane, started once here for the whole run and torn down
// at the end (also on Ctrl-C). Usage: node scripts/run-tests.ts [unit] [integration] [e2e]
//   [-- mocha options, e.g. --grep store]
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, runRoot } from '../e2e/harness/paths.ts';
import { keepRun, startEnvironment, type Environment } from '../e2e/harness/environment.ts';

type Tier = 'unit' | 'integration' | 'e2e';
const TIERS: Record<Tier, { specs: string[]; ignore: string[]; timeoutMs: number; needsServices: boolean }> = {
  unit: {
    specs: ['operator/**/*.test.ts', 'e2e/**/*.test.ts'],
    ignore: ['**/*.int.test.ts', '**/*.e2e.test.ts'],
    // Generous: the property tests are CPU-bound and took over 5 s on a loaded 2-core machine.
    timeoutMs: 30_000,
    needsServices: false,
  },
  integration: { specs: ['operator/**/*.int.test.ts', 'e2e/**/*.int.test.ts'], ignore: [], timeoutMs: 60_000, needsServices: true },
  e2e: { specs: ['e2e/**/*.e2e.test.ts'], ignore: [], timeoutMs: 180_000, needsServices: true },
};

const separator = process.argv.indexOf('--');
const tierArgs = (separator === -1 ? process.argv.slice(2) : process.argv.slice(2, separator)) as Tier[];
const mochaExtra = separator === -1 ? [] : process.argv.slice(separator + 1);
const tiers: Tier[] = tierArgs.length > 0 ? tierArgs : ['unit', 'integration', 'e2e'];
for (const tier of tiers) {
  if (!(tier in TIERS)) {
    console.error(`unknown tier '${tier}': expected unit, integration or e2e`);
    process.exit(2);
  }
}

interface TierResult {
  code: number;
  passed: number;
  failed: number;
  pending: number;
  /** Mocha's closing `N failing` section (each failed test, its assertion and stack), '' when none. */
  failures: string;
}

/** Appends a tier's failures to SPO_FAILURE_REPORT when set: scripts/test.sh prints that file last, so
 *  a CI log that keeps only its end still names the failed tests (the kind tier's output comes after). */
function reportFailures(what: string, failures: string): void {
  const file = process.env.SPO_FAILURE_REPORT;
  if (file && failures) appendFileSync(file, `=== ${what}: ${failures.slice(0, 16_000)}\n`);
}

/** Runs mocha for one tier, echoing its output and reading its closing counts. */
function runMocha(tier: Tier, env: NodeJS.ProcessEnv): Promise<TierResult> {
  const config = TIERS[tier];
  const args = [
    path.join(repoRoot, 'node_modules/mocha/bin/mocha.js'),
    '--extension',
    'ts',
    '--timeout',
    String(config.timeoutMs),
    '--reporter',
    'spec',
    '--exit',
    ...config.ignore.flatMap((glob) => ['--ignore', glob]),
    ...mochaExtra,
    ...config.specs,
  ];
  console.log(`\n=== ${tier} tests ===`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let tail = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-64 * 1024);
    });
    child.on('exit', (code, signal) => {
      const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(tail)?.[1] ?? 0);
      const exitCode = code ?? (signal ? 1 : 0);
      const failingAt = tail.search(/^ *\d+ failing$/m);
      // No failing section but a failed exit (a crash, a hook outside any test): the output's end.
      const failures = failingAt !== -1 ? tail.slice(failingAt).trim() : exitCode !== 0 ? tail.slice(-3000).trim() : '';
      resolve({
        code: exitCode,
        passed: count('passing'),
        failed: count('failing'),
        pending: count('pending'),
        failures,
      });
    });
  });
}

let environment: Environment | undefined;

function keepRunDir(runDir: string): void {
  keepRun(runDir);
  console.log(`run directory with logs kept: ${runDir}`);
}
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (environment) {
      await environment.stop();
      // Keep a failed run's logs for a look; a passing run leaves nothing behind.
      if (code === 0 && !process.env.SPO_KEEP_RUN) rmSync(environment.runDir, { recursive: true, force: true });
      else keepRunDir(environment.runDir);
    }
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

const failed: Tier[] = [];
const totals = { passed: 0, failed: 0, pending: 0 };
try {
  for (const tier of tiers) {
    let env: NodeJS.ProcessEnv = { ...process.env };
    if (TIERS[tier].needsServices) {
      // Each tier gets a fresh environment: what one tier leaves behind (pools whose operator
      // is gone, pods terminating on kwok nodes) must not change what the next one sees.
      if (environment) {
        await environment.stop();
        // A failed tier's logs stay for a look.
        if (failed.length === 0) rmSync(environment.runDir, { recursive: true, force: true });
        else keepRunDir(environment.runDir);
        environment = undefined;
      }
      const runDir = path.join(runRoot(), `test-${tier}-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
      mkdirSync(runDir, { recursive: true });
      // The TLS-only cluster serves the integration tests of TLS and ACL users only.
      environment = await startEnvironment(runDir, { log: (line) => console.log(`[env] ${line}`), tlsRedis: tier === 'integration' });
      env = { ...env, ...environment.variables() };
    }
    const result = await runMocha(tier, env);
    totals.passed += result.passed;
    totals.failed += result.failed;
    totals.pending += result.pending;
    reportFailures(`${tier} tier`, result.failures);
    // A tier that ran no test is a broken glob or filter, not a pass.
    if (result.code !== 0 || result.passed + result.failed === 0) failed.push(tier);
  }
} catch (error) {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  console.error(text);
  // The environment did not start (or stop): no tier after it ran.
  reportFailures('the test environment', text);
  await shutdown(1);
}
if (failed.length > 0) console.error(`\nfailed tiers: ${failed.join(', ')}`);
console.log(`\ntests: ${totals.passed} passed, ${totals.failed} failed${totals.pending ? `, ${totals.pending} skipped` : ''}`);
await shutdown(failed.length > 0 ? 1 : 0);
