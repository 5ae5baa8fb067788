// A check of the Dockerfile that needs no Docker engine: every COPY source from the build
// context exists, the commands the image runs are files of the repository, and the rules the
// image promises hold (multi-stage, Node 24, non-root, npm ci without dev dependencies).
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../e2e/harness/paths.ts';

interface Instruction {
  op: string;
  args: string;
}

export function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  return joined
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l);
      return { op: (m?.[1] ?? l).toUpperCase(), args: m?.[2] ?? '' };
    });
}

const dockerfile = parseDockerfile(readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
const dockerignore = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

function execForm(args: string): string[] {
  return JSON.parse(args) as string[];
}

describe('Dockerfile', () => {
  it('is multi-stage on Node 24 and runs as uid 10001', () => {
    const froms = dockerfile.filter((i) => i.op === 'FROM');
    expect(froms.length).to.be.at.least(2);
    for (const f of froms) expect(f.args).to.match(/^node:24[-.\w]*(\s+AS\s+\w+)?$/i);
    const users = dockerfile.filter((i) => i.op === 'USER');
    expect(users.at(-1)?.args).to.match(/^10001(:10001)?$/);
    expect(dockerfile.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))).to.equal(true);
  });

  it('copies only files that exist in the build context and are not ignored', () => {
    const copies = dockerfile.filter((i) => i.op === 'COPY' && !/--from=/.test(i.args));
    expect(copies.length).to.be.at.least(2);
    for (const c of copies) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(path.join(repoRoot, source)), `COPY source ${source}`).to.equal(true);
        expect(dockerignore, `COPY source ${source} is ignored`).to.not.include(source);
      }
    }
  });

  it('runs node on entry points that exist, the ones the tests run', () => {
    const entry = dockerfile.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    // tini as PID 1: node as a PID namespace's init would ignore a SIGTERM sent before its handler exists.
    expect(entry && execForm(entry.args)).to.deep.equal(['/usr/bin/tini', '--', 'node']);
    expect(dockerfile.some((i) => i.op === 'RUN' && /apt-get install\b.*\btini\b/.test(i.args))).to.equal(true);
    const cmd = dockerfile.filter((i) => i.op === 'CMD').at(-1);
    const command = cmd ? execForm(cmd.args) : [];
    expect(command).to.deep.equal(['operator/cmd/worker.ts']);
    expect(existsSync(path.join(repoRoot, 'operator/cmd/worker.ts'))).to.equal(true);
    // The operator command named in the Dockerfile header comment is the operator's entry point.
    const text = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(text).to.include('operator/cmd/operator.ts');
    const workerTest = readFileSync(path.join(repoRoot, 'operator/worker/worker.int.test.ts'), 'utf8');
    expect(workerTest).to.include("'operator/cmd/worker.ts'");
  });

  it('builds the operator ahead of time: the chart runs the build of operator/cmd/operator.ts', () => {
    // tsconfig.build.json compiles the operator's entry point (and what it imports) into dist/,
    // keeping the repository's layout, so operator/cmd/operator.ts becomes dist/operator/cmd/operator.js.
    const build = JSON.parse(readFileSync(path.join(repoRoot, 'tsconfig.build.json'), 'utf8')) as {
      extends: string;
      compilerOptions: { noEmit: boolean; rootDir: string; outDir: string };
      files: string[];
    };
    expect(build.extends).to.equal('./tsconfig.json');
    expect(build.files).to.deep.equal(['operator/cmd/operator.ts']);
    expect(build.compilerOptions).to.include({ noEmit: false, rootDir: '.', outDir: 'dist' });
    expect(dockerfile.some((i) => i.op === 'RUN' && /\btsc -p tsconfig\.build\.json$/.test(i.args))).to.equal(true);
    expect(dockerfile.some((i) => i.op === 'COPY' && /--from=build\b.*\/app\/dist \.\/dist$/.test(i.args))).to.equal(true);
    expect(dockerignore, 'a local dist/ is not sent: the image builds its own').to.include('dist');
    const template = readFileSync(path.join(repoRoot, 'charts/session-pool-operator/templates/deployment.yaml'), 'utf8');
    expect(template).to.include('- dist/operator/cmd/operator.js');
  });

  it('ignores what the image must not carry', () => {
    for (const p of ['.git', 'node_modules', '**/*.test.ts']) expect(dockerignore).to.include(p);
  });
});

/** Every file reachable by relative imports from an entry point (the image must hold them all). */
function importClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      visit(path.resolve(path.dirname(file), match[1]!));
    }
  };
  visit(path.join(repoRoot, entry));
  return seen;
}

describe('Dockerfile: what the entry points load is in the image', () => {
  for (const entry of ['operator/cmd/operator.ts', 'operator/cmd/worker.ts']) {
    it(`${entry} imports only files under operator/ that .dockerignore keeps`, () => {
      const files = [...importClosure(entry)].map((f) => path.relative(repoRoot, f));
      expect(files.length).to.be.greaterThan(5);
      const outside = files.filter((f) => !f.startsWith('operator/') && !f.startsWith('package.json'));
      expect(outside, 'imported from outside operator/ (not copied into the image)').to.deep.equal([]);
      const ignored = files.filter((f) => /\.test\.ts$/.test(f) || f.split('/').includes('testing'));
      expect(ignored, 'imported files that .dockerignore leaves out').to.deep.equal([]);
    });
  }
});
