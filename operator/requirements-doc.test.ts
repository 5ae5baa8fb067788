// docs/requirements.md maps each criterion to what proves it. A citation names a file in backticks and
// then, in double quotes, tests of that file (a `…` marks a shortened title: each part must be there).
// This keeps the table from pointing at files or tests that were moved, renamed or removed.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../e2e/harness/paths.ts';

const CODE = /\.(ts|py|sh)$/;

interface Citation {
  row: string;
  files: string[];
  title: string;
}

const tracked = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' }).split('\n');

/** A cited file: its path from the root, a glob of paths (`*`), or, when the table shortens it to a name,
 *  every file of that name. */
function resolve(cited: string): string[] {
  if (cited.includes('*')) {
    const pattern = new RegExp(`^${cited.split('*').map(escape).join('[^/]*')}$`);
    return tracked.filter((f) => pattern.test(f));
  }
  if (existsSync(path.join(repoRoot, cited))) return [cited];
  return tracked.filter((f) => f.endsWith(`/${cited}`));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function citations(markdown: string): { citations: Citation[]; missing: string[] } {
  const found: Citation[] = [];
  const missing: string[] = [];
  for (const line of markdown.split('\n')) {
    const row = /^\| (\d+\.\d+) /.exec(line)?.[1];
    if (!row) continue;
    const proof = line.split('|').slice(-2)[0] ?? '';
    let files: string[] = [];
    for (const m of proof.matchAll(/`([^`]+)`|"([^"]+)"/g)) {
      const [, code, title] = m;
      if (code !== undefined) {
        if (code.includes('/') || code.endsWith('.md')) files = [];
        if (!CODE.test(code)) continue;
        files = resolve(code);
        if (files.length === 0) missing.push(`${row}: ${code}`);
      } else if (title !== undefined && files.length > 0) found.push({ row, files, title });
    }
  }
  return { citations: found, missing };
}

describe('docs/requirements.md', () => {
  const { citations: cited, missing } = citations(readFileSync(path.join(repoRoot, 'docs/requirements.md'), 'utf8'));

  it('cites files that exist', () => {
    expect(missing).to.deep.equal([]);
  });

  it('cites tests that exist in the files it names', () => {
    expect(cited.length, 'citations found').to.be.greaterThan(30);
    const absent = cited.filter(({ files, title }) => {
      const parts = title
        .split('…')
        .map((p) => p.trim())
        .filter((p) => p.length > 0);
      return !files.some((f) => {
        const text = readFileSync(path.join(repoRoot, f), 'utf8');
        return parts.every((p) => text.includes(p));
      });
    });
    expect(absent.map((c) => `${c.row}: ${c.files.join(', ')} "${c.title}"`)).to.deep.equal([]);
  });
});
