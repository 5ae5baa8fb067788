// Runs every check of the conformance suite against one handler command: the handler is started
// once, and started again whenever a check (crash) ended it. Prints one line per check.
import { CHECKS } from './checks.ts';
import { HandlerProcess } from './handler-process.ts';

export interface SuiteResult {
  passed: number;
  failed: number;
  failures: { check: string; error: string }[];
}

export async function runSuite(command: string[], print: (line: string) => void = console.log): Promise<SuiteResult> {
  const handler = new HandlerProcess(command);
  const result: SuiteResult = { passed: 0, failed: 0, failures: [] };
  print(`handler contract conformance: ${command.join(' ')}`);
  try {
    for (const check of CHECKS) {
      try {
        if (!handler.running) await handler.start();
        await check.run(handler);
        result.passed++;
        print(`  ok    ${check.name}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        result.failed++;
        result.failures.push({ check: check.name, error: message });
        print(`  FAIL  ${check.name}\n        ${message.split('\n').join('\n        ')}`);
      }
    }
  } finally {
    await handler.stop();
  }
  print(`${result.passed} passed, ${result.failed} failed`);
  return result;
}
