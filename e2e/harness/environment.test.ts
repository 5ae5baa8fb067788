import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { keepRun, reapStaleRuns } from './environment.ts';

describe('harness: run directories', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'spo-runs-'));
  const previousRoot = process.env.SPO_RUN_ROOT;
  before(() => (process.env.SPO_RUN_ROOT = root));
  after(() => {
    if (previousRoot === undefined) delete process.env.SPO_RUN_ROOT;
    else process.env.SPO_RUN_ROOT = previousRoot;
    rmSync(root, { recursive: true, force: true });
  });

  it('a clean-up removes runs whose owner died, keeps live ones and the newest four kept ones', async () => {
    const dir = (name: string) => {
      mkdirSync(path.join(root, name, 'logs'), { recursive: true });
      return path.join(root, name);
    };
    // A process that has exited: its pid names no process now.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    writeFileSync(path.join(dir('stale'), 'owner.json'), JSON.stringify({ pid: dead }));
    writeFileSync(path.join(dir('live'), 'owner.json'), JSON.stringify({ pid: process.pid }));
    for (let i = 1; i <= 6; i++) {
      const kept = dir(`kept-${i}`);
      writeFileSync(path.join(kept, 'owner.json'), JSON.stringify({ pid: dead }));
      keepRun(kept);
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct keptAt times
    }
    await reapStaleRuns();
    expect(readdirSync(root).sort()).to.deep.equal(['kept-3', 'kept-4', 'kept-5', 'kept-6', 'live']);
    expect(existsSync(path.join(root, 'kept-6', 'logs'))).to.equal(true);
  });
});
