// Summary of a V8 CPU profile (.cpuprofile, as written by `node --cpu-prof`): the frames with the
// most self time and the most inclusive time (a frame counted once per sample however often it
// recurs on the stack), as shares of all samples and of the non-idle ones.
// Usage: node bench/cpu-prof-top.ts <file.cpuprofile> [--top 25] [--filter text]
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

const file = process.argv[2];
if (!file) throw new Error('usage: node bench/cpu-prof-top.ts <file.cpuprofile> [--top 25]');
const topIndex = process.argv.indexOf('--top');
const TOP = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 25;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** A frame's name: function, file (relative to node_modules or the repository) and line. */
function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const fn = functionName || '(anonymous)';
  if (!url) return fn;
  const short = url.includes('node_modules/')
    ? url.slice(url.lastIndexOf('node_modules/') + 13)
    : path.relative(process.cwd(), url.replace(/^file:\/\//, ''));
  return `${fn} ${short}:${lineNumber + 1}`;
}

/** Where a frame's code lives: a package, a directory of this repository, a Node.js module, or native. */
function placeOf(n: ProfileNode): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : 'native (no script)';
  if (url.includes('node_modules/')) {
    const rest = url.slice(url.lastIndexOf('node_modules/') + 13).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/')[0]!;
  const rel = path.relative(process.cwd(), url.replace(/^file:\/\//, '')).split('/');
  return rel.slice(0, Math.min(2, rel.length - 1)).join('/');
}

const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);
const self = new Map<string, number>();
const places = new Map<string, number>();
const inclusive = new Map<string, number>();
let idle = 0;
for (const id of profile.samples) {
  const leaf = byId.get(id)!;
  const leafName = frameName(leaf);
  if (leaf.callFrame.functionName === '(idle)') idle++;
  self.set(leafName, (self.get(leafName) ?? 0) + 1);
  const place = placeOf(leaf);
  places.set(place, (places.get(place) ?? 0) + 1);
  const seen = new Set<string>();
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const name = frameName(byId.get(n)!);
    if (seen.has(name)) continue;
    seen.add(name);
    inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
  }
}
const total = profile.samples.length;
const busy = total - idle;
const pct = (count: number, of: number) => `${((100 * count) / of).toFixed(1).padStart(5)} %`;
const top = (m: Map<string, number>) =>
  [...m]
    .filter(([name]) => !IDLE.has(name.split(' ')[0]!) || name.startsWith('(garbage') || name.startsWith('(program'))
    .filter(([name]) => name !== '(root)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP);
console.log(`${path.basename(file)}: ${total} samples, idle ${pct(idle, total)}; shares of non-idle samples (${busy})`);
console.log('self time:');
for (const [name, count] of top(self)) console.log(`  ${pct(count, busy)}  ${name}`);
console.log('self time by place (package, repository directory, Node.js module):');
for (const [name, count] of top(places)) console.log(`  ${pct(count, busy)}  ${name}`);
console.log('inclusive time:');
for (const [name, count] of top(inclusive)) console.log(`  ${pct(count, busy)}  ${name}`);
