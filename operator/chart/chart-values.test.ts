// The chart's values: values.schema.json refuses what it does not know, matches values.yaml,
// and every value is documented in values.yaml and docs/chart.md.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { chartDir } from '../../charts/testing.ts';
import { repoRoot } from '../../e2e/harness/paths.ts';
import { refused } from './test-support.ts';

describe('chart: values schema', function () {
  this.timeout(30_000);

  it('refuses unknown keys at every level', () => {
    expect(refused({ replicas: 2 })).to.match(/additional properties 'replicas' not allowed/i);
    expect(refused({ image: { name: 'x' } })).to.match(/additional properties 'name' not allowed/i);
    expect(refused({ prometheusRule: { rules: { storeLatency: { threshold: 1 } } } })).to.match(
      /additional properties 'threshold' not allowed/i,
    );
    expect(refused({ securityContext: { runAsRoot: true } })).to.match(/additional properties 'runAsRoot' not allowed/i);
  });

  it('refuses wrong types and out-of-range values', () => {
    expect(refused({ replicaCount: 'two' })).to.match(/replicaCount/);
    expect(refused({ leaderElection: { enabled: 'sure' } })).to.match(/leaderElection/);
    expect(refused({ metrics: { port: 80 } })).to.match(/metrics/);
    expect(refused({ logLevel: 'verbose' })).to.match(/logLevel/);
    expect(refused({ podDisruptionBudget: { maxUnavailable: 0 } })).to.match(/maxUnavailable/);
    expect(refused({ prometheusRule: { rules: { poolNearMaxWorkers: { ratio: 1.5 } } } })).to.match(/ratio/);
    expect(refused({ serviceMonitor: { interval: 'often' } })).to.match(/interval/);
    expect(refused({ extraArgs: ['leader-elect'] })).to.match(/extraArgs/);
  });

  it('closes every object of the schema (additionalProperties false or typed), apart from Kubernetes pass-through', () => {
    const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
    const open: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${at}[${i}]`));
      if (typeof node !== 'object' || node === null) return;
      const record = node as Record<string, unknown>;
      if (record.type === 'object') {
        if (record.properties !== undefined && record.additionalProperties !== false) open.push(`${at} has properties but is not closed`);
        if (record.properties === undefined && record.additionalProperties === undefined)
          open.push(`${at} is an object with no rule for its keys`);
        if (record.additionalProperties === true) open.push(at);
      }
      for (const [key, value] of Object.entries(record)) walk(value, `${at}/${key}`);
    };
    walk(schema, '#');
    // Only Helm's `global` and the deep terms of affinity (validated by the apiserver) stay open.
    expect(open.filter((p) => !/^#\/properties\/(global|affinity\/properties\/\w+\/properties\/\w+)/.test(p))).to.deep.equal([]);
  });

  it('matches values.yaml: every default validates and every schema property has a default', () => {
    const values = parse(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
    expect(Object.keys(values).sort()).to.deep.equal(
      Object.keys(schema.properties)
        .filter((k) => k !== 'global')
        .sort(),
    );
  });
});

describe('chart: documentation', function () {
  /** Paths of values.yaml keys that carry a `# --` comment, the documented ones. */
  function documentedPaths(): string[] {
    const lines = readFileSync(path.join(chartDir, 'values.yaml'), 'utf8').split('\n');
    const stack: { indent: number; key: string }[] = [];
    const paths: string[] = [];
    let commented = false;
    for (const line of lines) {
      const comment = /^\s*# --/.test(line);
      if (/^\s*#/.test(line) || line.trim() === '') {
        if (comment) commented = true;
        else if (line.trim() === '') commented = false;
        continue;
      }
      const match = /^(\s*)([A-Za-z][\w.-]*):/.exec(line);
      if (!match) continue;
      const indent = match[1]!.length;
      while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
      stack.push({ indent, key: match[2]! });
      if (commented) paths.push(stack.map((s) => s.key).join('.'));
      commented = false;
    }
    return paths;
  }

  it('documents every leaf of values.yaml with a `# --` comment', () => {
    const values = parse(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const documented = new Set(documentedPaths());
    const undocumented: string[] = [];
    const walk = (node: unknown, at: string[]): void => {
      const key = at.join('.');
      if (at.length > 0 && documented.has(key)) return;
      if (typeof node === 'object' && node !== null && !Array.isArray(node) && Object.keys(node).length > 0) {
        for (const [k, v] of Object.entries(node)) walk(v, [...at, k]);
      } else undocumented.push(key);
    };
    walk(values, []);
    expect(undocumented).to.deep.equal([]);
  });

  it('describes every documented value in docs/chart.md', () => {
    const doc = readFileSync(path.join(repoRoot, 'docs/chart.md'), 'utf8');
    expect(documentedPaths().filter((p) => !doc.includes(`\`${p}\``))).to.deep.equal([]);
  });
});
