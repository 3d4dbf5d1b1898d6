/**
 * Heap breakdown of the manyKeys case: snapshot before the manager is built and after
 * every key is used; the nodes new in the second, grouped by constructor and by owner.
 *   node --expose-gc bench/heap-breakdown.ts [--n 10000] [--dist dist]
 */
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import fs from 'node:fs';
import OpenAI from 'openai';
import { CHAT_BODY, fakeKeys, forceGc, makeManager } from './lib.ts';
import { manyKeysUsed, OPENAI_RATE_HEADERS } from './hotpath.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, dist: { type: 'string', default: 'dist' }, keep: { type: 'boolean', default: false } } });
const count = Number(values.n);
const { keyplex } = (await import(`../${values.dist}/index.js`)) as typeof import('../dist/index.js');
const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
const { CHAT_JSON } = await import('./lib.ts');
const fetch = async () => new Response(CHAT_JSON, { status: 200, headers });
const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;

// Warm-up: a small manager used once, so code and SDK structures exist before the first snapshot.
{
  const { manager } = makeManager({ keys: fakeKeys(2, 2), baseURL, fetch, events: true });
  const c = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  for (let i = 0; i < 50; i++) await c.chat.completions.create(CHAT_BODY, keyplex.options({ provider: `p${i % 2}` }));
  manager.stats();
  await manager.close();
}
forceGc();
const before = process.memoryUsage().heapUsed;
const snapA = v8.writeHeapSnapshot('bench/out/heap-a.heapsnapshot');
forceGc();
const before2 = process.memoryUsage().heapUsed;
const manager = await manyKeysUsed(count, fetch);
forceGc();
const after = process.memoryUsage().heapUsed;
const snapB = v8.writeHeapSnapshot('bench/out/heap-b.heapsnapshot');
const st = manager.stats();
let used = 0;
for (const p of Object.values(st.providers)) for (const k of p.keys) if (k.requests > 0) used++;
console.log(`heapUsed delta ${(after - before2) / count} B/key (before-snapshot ${(after - before) / count}); used ${used}`);
// keep manager alive until the snapshot is written (it already is)
(globalThis as { keep?: unknown }).keep = manager;

type Snap = { snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } }; nodes: number[]; edges: number[]; strings: string[] };
const load = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as Snap;
const A = load(snapA);
const nfA = A.snapshot.meta.node_fields.length;
const idsA = new Set<number>();
for (let i = 0; i < A.nodes.length; i += nfA) idsA.add(A.nodes[i + 2]!);
const B = load(snapB);
const meta = B.snapshot.meta;
const nf = meta.node_fields.length;
const ef = meta.edge_fields.length;
const ntypes = meta.node_types[0];
const etypes = meta.edge_types[0];
const N = B.nodes.length / nf;
const type = (n: number) => ntypes[B.nodes[n * nf]!]!;
const name = (n: number) => B.strings[B.nodes[n * nf + 1]!]!;
const id = (n: number) => B.nodes[n * nf + 2]!;
const self = (n: number) => B.nodes[n * nf + 3]!;
const ecount = (n: number) => B.nodes[n * nf + 4]!;
const firstEdge = new Uint32Array(N + 1);
for (let n = 0, e = 0; n < N; n++) { firstEdge[n] = e; e += ecount(n) * ef; }
firstEdge[N] = B.edges.length;
// retainers: for each node, a list of (from, edge index)
const retCount = new Uint32Array(N);
for (let e = 0; e < B.edges.length; e += ef) retCount[B.edges[e + 2]! / nf]!++;
const retStart = new Uint32Array(N + 1);
for (let n = 0; n < N; n++) retStart[n + 1] = retStart[n]! + retCount[n]!;
const retFrom = new Uint32Array(retStart[N]!);
const retEdge = new Uint32Array(retStart[N]!);
const fill = retStart.slice();
for (let n = 0; n < N; n++) for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) { const t = B.edges[e + 2]! / nf; retFrom[fill[t]!] = n; retEdge[fill[t]!++] = e; }
const isNew = (n: number) => !idsA.has(id(n));
const label = (n: number) => { const t = type(n); return t === 'object' ? name(n) : t === 'closure' ? `closure ${name(n)}` : `(${t})${t === 'hidden' || t === 'array' || t === 'code' ? ' ' + name(n).slice(0, 40) : ''}`; };
const edgeName = (e: number) => { const t = etypes[B.edges[e]!]!; const v = B.edges[e + 1]!; return t === 'element' || t === 'hidden' ? `[${t === 'hidden' ? 'h' : ''}]` : B.strings[v]!; };
// best retainer: prefer a new, non-weak retainer; skip 'weak' and shortcut edges
const bestRet = (n: number): number => {
  let fallback = -1;
  for (let r = retStart[n]!; r < retStart[n + 1]!; r++) {
    const e = retEdge[r]!;
    const et = etypes[B.edges[e]!]!;
    if (et === 'weak' || et === 'shortcut') continue;
    const f = retFrom[r]!;
    if (isNew(f)) return r;
    if (fallback < 0) fallback = r;
  }
  return fallback;
};
const NAMED = /^[A-Z][A-Za-z0-9]+$/;
const BORING = new Set(['Object', 'Array', 'Map', 'Set', 'Float64Array', 'Uint32Array', 'Int32Array', 'ArrayBuffer', 'Function']);
/** owner path: walk retainers up to the first new node with a class-like constructor name (not a builtin). */
const ownerOf = (n: number): string => {
  const parts: string[] = [];
  let cur = n;
  for (let depth = 0; depth < 8; depth++) {
    const r = bestRet(cur);
    if (r < 0) break;
    const f = retFrom[r]!;
    parts.unshift(edgeName(retEdge[r]!));
    if (!isNew(f)) { parts.unshift(`<old ${label(f)}>`); break; }
    const l = label(f);
    if (type(f) === 'object' && NAMED.test(l) && !BORING.has(l)) { parts.unshift(l); break; }
    if (type(f) === 'closure') { parts.unshift(l); break; }
    cur = f;
  }
  return parts.join('.');
};
const byCtor = new Map<string, { size: number; count: number }>();
const byOwner = new Map<string, { size: number; count: number }>();
let total = 0;
for (let n = 0; n < N; n++) {
  if (!isNew(n)) continue;
  const s = self(n);
  if (s === 0) continue;
  total += s;
  const l = label(n);
  const c = byCtor.get(l) ?? { size: 0, count: 0 }; c.size += s; c.count++; byCtor.set(l, c);
  const o = `${l}  <-  ${ownerOf(n)}`;
  const d = byOwner.get(o) ?? { size: 0, count: 0 }; d.size += s; d.count++; byOwner.set(o, d);
}
const show = (m: Map<string, { size: number; count: number }>, top: number) => {
  for (const [k, v] of [...m].sort((a, b) => b[1].size - a[1].size).slice(0, top)) console.log(`${(v.size / count).toFixed(1).padStart(8)} B/key ${String(v.count).padStart(8)} objs  ${k}`);
};
console.log(`new self size total ${(total / count).toFixed(1)} B/key`);
console.log('--- by constructor');
show(byCtor, 40);
console.log('--- by constructor <- owner');
show(byOwner, 90);
if (!values.keep) { fs.rmSync(snapA); fs.rmSync(snapB); }
await manager.close();
