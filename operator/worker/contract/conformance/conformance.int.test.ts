// The conformance suite run as a command (`run.ts -- <handler command>`) against every handler
// implementation in the repository, and against a broken handler that it must fail.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../../../e2e/harness/paths.ts';
import { CHECKS } from './checks.ts';

const RUN = path.join(repoRoot, 'operator/worker/contract/conformance/run.ts');

/** Handler implementations that must pass: each a command line that starts one. */
export const HANDLER_COMMANDS: { name: string; command: string[] }[] = [
  {
    name: 'the raw Python handler (standard library, no SDK)',
    command: ['python3', path.join(repoRoot, 'operator/worker/contract/conformance/raw_python_handler.py')],
  },
  {
    // The SDK's conformance handlers, in the cached venv (created by scripts/python-env.sh, which
    // npm test runs before this tier); exec so that the suite's pid is Python's.
    name: 'the Python SDK (spo_handler.conformance)',
    command: ['bash', '-c', `exec "$(bash ${path.join(repoRoot, 'scripts/python-env.sh')})/bin/python" -m spo_handler.conformance`],
  },
];

// Ready, but every invoke answers 200 {} and nothing else: most checks must fail.
const BROKEN_HANDLER = `
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, body):
        b = json.dumps(body).encode(); self.send_response(200)
        self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self): self.reply({'ready': True, 'contract': 1, 'handlers': []})
    def do_POST(self): self.reply({})
HTTPServer(('127.0.0.1', int(os.environ['SPO_HANDLER_PORT'])), H).serve_forever()
`;

function runSuite(command: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, '--', ...command], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('handler contract conformance suite', function () {
  this.timeout(180_000);

  for (const implementation of HANDLER_COMMANDS) {
    it(`passes against ${implementation.name}`, async () => {
      const { code, output } = await runSuite(implementation.command);
      const summary = /^(\d+) passed, (\d+) failed$/m.exec(output);
      console.log(`      ${summary?.[0] ?? 'no summary line'}`);
      expect(summary, output).to.not.equal(null);
      expect(Number(summary?.[2]), output).to.equal(0);
      expect(Number(summary?.[1]), output).to.equal(CHECKS.length);
      expect(code, output).to.equal(0);
    });
  }

  it('fails against a handler that answers 200 {} to everything', async () => {
    const { code, output } = await runSuite(['python3', '-c', BROKEN_HANDLER]);
    const summary = /^(\d+) passed, (\d+) failed$/m.exec(output);
    expect(summary, output).to.not.equal(null);
    expect(Number(summary?.[2]), output).to.be.greaterThan(CHECKS.length / 2);
    expect(code).to.equal(1);
  });
});
