// The chart's alerts and dashboard read metrics by name; a renamed or missing metric would make
// an alert silently never fire. Every spo_* name they use must be defined by the code.
import { expect } from 'chai';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ALL_FEATURES, chartDir, renderText } from '../../charts/testing.ts';
import { repoRoot } from '../../e2e/harness/paths.ts';

/** Metric names declared in the operator's sources (quoted spo_* strings, tests excluded). */
function declaredMetricNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const file = path.join(dir, entry);
      if (statSync(file).isDirectory()) walk(file);
      else if (file.endsWith('.ts') && !file.endsWith('.test.ts') && !file.includes(`${path.sep}testing${path.sep}`)) {
        for (const match of readFileSync(file, 'utf8').matchAll(/['"`](spo_[a-z0-9_]+)['"`]/g)) names.add(match[1]!);
      }
    }
  };
  walk(path.join(repoRoot, 'operator'));
  return names;
}

/** spo_* series named in a text, with the histogram suffixes folded onto their metric. */
function referencedMetricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/\bspo_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
}

describe('chart: metrics contract', () => {
  const declared = declaredMetricNames();

  it('every metric the alert rules read is defined by the code', () => {
    const rendered = renderText(ALL_FEATURES);
    const rules = rendered
      .split('\n---')
      .filter((doc) => /kind: PrometheusRule/.test(doc))
      .join('\n');
    const used = referencedMetricNames(rules);
    expect(used.size, 'the rules name spo_* metrics').to.be.greaterThan(5);
    expect([...used].filter((name) => !declared.has(name))).to.deep.equal([]);
  });

  it('every metric the Grafana dashboard reads is defined by the code', () => {
    const dashboardDir = path.join(chartDir, 'dashboards');
    const text = readdirSync(dashboardDir)
      .map((f) => readFileSync(path.join(dashboardDir, f), 'utf8'))
      .join('\n');
    const used = referencedMetricNames(text);
    expect(used.size).to.be.greaterThan(3);
    expect([...used].filter((name) => !declared.has(name))).to.deep.equal([]);
  });
});
