// Summary of a V8 heap snapshot (.heapsnapshot, as written by --heapsnapshot-signal or
// v8.writeHeapSnapshot): the constructors (object groups, as DevTools' Summary view names them)
// with the largest retained sizes, computed with the dominator tree of the snapshot's graph
// (Cooper-Harvey-Kennedy), and their shallow sizes and counts.
// Usage: node bench/heap-top.ts <file.heapsnapshot> [--top 20]
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] }; node_count: number };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const file = process.argv[2];
if (!file) throw new Error('usage: node bench/heap-top.ts <file.heapsnapshot> [--top 20]');
const topIndex = process.argv.indexOf('--top');
const TOP = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 20;
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const { meta } = snap.snapshot;
const NF = meta.node_fields.length;
const EF = meta.edge_fields.length;
const nType = meta.node_fields.indexOf('type');
const nName = meta.node_fields.indexOf('name');
const nSize = meta.node_fields.indexOf('self_size');
const nEdges = meta.node_fields.indexOf('edge_count');
const eType = meta.edge_fields.indexOf('type');
const eTo = meta.edge_fields.indexOf('to_node');
const nodeTypes = meta.node_types[0];
const edgeTypes = meta.edge_types[0];
const weak = edgeTypes.indexOf('weak');
const shortcut = edgeTypes.indexOf('shortcut');
const count = snap.nodes.length / NF;

// Edges of each node (first edge index), and predecessors for the dominator computation.
const firstEdge = new Uint32Array(count + 1);
for (let i = 0, e = 0; i < count; i++) {
  firstEdge[i] = e;
  e += snap.nodes[i * NF + nEdges]! * EF;
  firstEdge[i + 1] = e;
}
const successors = (i: number, visit: (j: number) => void): void => {
  for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += EF) {
    const t = snap.edges[e + eType]!;
    if (t === weak || t === shortcut) continue;
    visit(snap.edges[e + eTo]! / NF);
  }
};

// Reverse post-order from the root (node 0).
const order = new Int32Array(count).fill(-1);
const post: number[] = [];
{
  const stack: [number, number][] = [[0, firstEdge[0]!]];
  order[0] = -2;
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [i, e] = top;
    if (e < firstEdge[i + 1]!) {
      top[1] = e + EF;
      const t = snap.edges[e + eType]!;
      if (t === weak || t === shortcut) continue;
      const j = snap.edges[e + eTo]! / NF;
      if (order[j] === -1) {
        order[j] = -2;
        stack.push([j, firstEdge[j]!]);
      }
    } else {
      stack.pop();
      order[i] = post.length;
      post.push(i);
    }
  }
}
const preds: number[][] = Array.from({ length: count }, () => []);
for (const i of post) successors(i, (j) => void preds[j]!.push(i));
const idom = new Int32Array(count).fill(-1);
idom[0] = 0;
const intersect = (a: number, b: number): number => {
  while (a !== b) {
    while (order[a]! < order[b]!) a = idom[a]!;
    while (order[b]! < order[a]!) b = idom[b]!;
  }
  return a;
};
for (let changed = true; changed;) {
  changed = false;
  for (let k = post.length - 1; k >= 0; k--) {
    const i = post[k]!;
    if (i === 0) continue;
    let d = -1;
    for (const p of preds[i]!) if (idom[p] !== -1) d = d === -1 ? p : intersect(p, d);
    if (d !== -1 && idom[i] !== d) {
      idom[i] = d;
      changed = true;
    }
  }
}
const retained = new Float64Array(count);
for (const i of post) retained[i]! += snap.nodes[i * NF + nSize]!;
for (const i of post) if (i !== 0 && idom[i]! >= 0) retained[idom[i]!]! += retained[i]!;

// Group by class name; a group's retained size counts only its members not dominated by another member.
const groupOf = (i: number): string => {
  const type = nodeTypes[snap.nodes[i * NF + nType]!] ?? '?';
  const name = snap.strings[snap.nodes[i * NF + nName]!] ?? '';
  if (type === 'object' || type === 'native') return name;
  if (type === 'closure') return 'Function';
  return `(${type})`;
};
const groups = new Map<string, { count: number; shallow: number; retained: number }>();
const names = post.map((i) => groupOf(i));
const nameOf = new Map<number, string>(post.map((i, k) => [i, names[k]!]));
for (const i of post) {
  const g = nameOf.get(i)!;
  const entry = groups.get(g) ?? { count: 0, shallow: 0, retained: 0 };
  entry.count++;
  entry.shallow += snap.nodes[i * NF + nSize]!;
  let d = idom[i]!;
  let nested = false;
  while (d > 0) {
    if (nameOf.get(d) === g) {
      nested = true;
      break;
    }
    d = idom[d]!;
  }
  if (!nested) entry.retained += retained[i]!;
  groups.set(g, entry);
}
const mib = (n: number): string => (n / 1024 / 1024).toFixed(2).padStart(8);
const total = retained[0]!;
console.log(`${file}: ${count} nodes, ${mib(total).trim()} MiB reachable`);
console.log(`${'retained MiB'.padStart(12)} ${'shallow MiB'.padStart(11)} ${'count'.padStart(8)}  constructor`);
for (const [g, e] of [...groups]
  .filter(([g]) => g !== '')
  .sort((a, b) => b[1].retained - a[1].retained)
  .slice(0, TOP))
  console.log(`${mib(e.retained).padStart(12)} ${mib(e.shallow).padStart(11)} ${String(e.count).padStart(8)}  ${g.slice(0, 80)}`);
