// The conformance suite of the handler contract, as a command:
//   node operator/worker/contract/conformance/run.ts -- <command that starts the handler>
// It starts the handler with SPO_HANDLER_PORT set to a free loopback port, runs every check
// (checks.ts), prints `N passed, N failed` and exits 1 when a check failed.
import { runSuite } from './suite.ts';

const separator = process.argv.indexOf('--');
const command = separator === -1 ? process.argv.slice(2) : process.argv.slice(separator + 1);
if (command.length === 0) {
  console.error('usage: node operator/worker/contract/conformance/run.ts -- <command that starts the handler>');
  process.exit(2);
}
const result = await runSuite(command);
process.exit(result.failed === 0 ? 0 : 1);
