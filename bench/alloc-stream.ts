/**
 * Bytes allocated per streamed reply (not part of `npm run bench`): the raw
 * SDK and two keyplex builds (bench/ab-lib.ts) on the `sse-rl` fake fetch
 * (13 events, OpenAI's six rate-limit headers; `--split`: one event per
 * read, as from a network; `--json`: the JSON reply instead), sequential requests (streams fully iterated), rounds interleaved.
 *
 * By default exact: the process re-runs itself with a 256 MiB young
 * generation and `--expose-gc`, so that no collection runs within a batch;
 * the V8 heap's growth over a batch ÷ its requests (ArrayBuffer contents,
 * off the heap, are not counted). With `--by-function`: each variant under
 * V8's sampling heap profiler instead (objects freed by collections
 * included), and per function the largest differences branch − raw and
 * branch − base: where the extra garbage is (±0.5 KB of sampling noise).
 *
 * Why it matters: with Node's default 16 MiB semi-space, a collection runs
 * every ~16.4 MB allocated; at ~164 KB per stream that is 1 % of the streams,
 * so a sequential p99 over the streams lands on a collection once a stream
 * allocates more than that (raw SDK: 132 KB, 0.8 %).
 *
 * `--loopback`: the same canned reply from a node:http server in a child
 * process on 127.0.0.1, through Node's global fetch (every variant).
 *
 *   npm run build && node bench/alloc-stream.ts bench/out/base/index.js dist/index.js [--json | --split] [--loopback] [--by-function [--n 2000] [--rounds 3] [--top 30]]
 */
import { spawnSync } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { getHeapStatistics } from 'node:v8';
import { parseArgs } from 'node:util';
import { cannedServer, CHAT_BODY, CHAT_JSON, CHAT_SSE, fetchAt } from './lib.ts';
import { OPENAI_RATE_HEADERS } from './hotpath.ts';
import { abClients } from './ab-lib.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { n: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' }, top: { type: 'string', default: '30' }, json: { type: 'boolean', default: false }, split: { type: 'boolean', default: false }, 'by-function': { type: 'boolean', default: false }, loopback: { type: 'boolean', default: false } } });
const [basePath, branchPath] = positionals;
if (!basePath || !branchPath) throw new Error('usage: node bench/alloc-stream.ts <base dist/index.js> <branch dist/index.js> [--n 2000] [--rounds 3]');
const gc = (globalThis as { gc?: () => void }).gc;
if (!values['by-function'] && gc === undefined) {
  // Exact mode needs a young generation no batch fills, and gc().
  const flags = ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256'];
  process.exit(spawnSync(process.execPath, [...flags, ...process.argv.slice(1)], { stdio: 'inherit' }).status ?? 1);
}
const n = Number(values.n), rounds = Number(values.rounds), top = Number(values.top);
const headers = { 'content-type': values.json ? 'application/json' : 'text/event-stream; charset=utf-8', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
// --split: the 13 events one per read, as a network delivers them (the default: the whole body in one read).
const EVENTS = CHAT_SSE.split('\n\n').filter(Boolean).map((e) => new TextEncoder().encode(`${e}\n\n`));
const split = () => new ReadableStream<Uint8Array>({ start: (c) => void (EVENTS.forEach((e) => c.enqueue(e)), c.close()) });
const canned = (async () => new Response(values.json ? CHAT_JSON : values.split ? split() : CHAT_SSE, { status: 200, headers })) as typeof globalThis.fetch;
// --loopback: the same canned reply from a node:http server in a child process, through the global fetch (every variant's URL pointed at it).
const server = values.loopback ? await cannedServer(values.json ? CHAT_JSON : CHAT_SSE, headers) : undefined;
const fetch = server ? fetchAt(server.origin) : canned;
const { clients, close } = await abClients(basePath, branchPath, fetch);
const VARIANTS = ['raw', 'base', 'branch'];
const run = async (v: string, count: number) => {
  for (let i = 0; i < count; i++) {
    if (values.json) {
      await clients[v]!.chat.completions.create(CHAT_BODY);
      continue;
    }
    const stream = await clients[v]!.chat.completions.create({ ...CHAT_BODY, stream: true });
    for await (const _ of stream);
  }
};
for (const v of VARIANTS) await run(v, 1000);
const unit = values.json ? 'request' : 'stream';

if (gc !== undefined) {
  // Exact: 6 interleaved rounds of 300 (300 × 170 KB stays well inside the 256 MiB young generation).
  const per: Record<string, number[]> = { raw: [], base: [], branch: [] };
  for (let r = 0; r < 6; r++) {
    for (let i = 0; i < VARIANTS.length; i++) {
      const v = VARIANTS[(i + r) % VARIANTS.length]!;
      gc();
      gc();
      const before = getHeapStatistics().used_heap_size;
      await run(v, 300);
      per[v]!.push((getHeapStatistics().used_heap_size - before) / 300);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  for (const v of VARIANTS) process.stdout.write(`${v.padEnd(6)} ${(med(per[v]!) / 1024).toFixed(2)} KiB of V8 heap per ${unit} (median of 6 batches of 300; ${per[v]!.map((x) => (x / 1024).toFixed(1)).join(' ')})\n`);
  process.stdout.write(`branch − base ${((med(per.branch!) - med(per.base!)) / 1024).toFixed(2)} KiB; branch − raw ${((med(per.branch!) - med(per.raw!)) / 1024).toFixed(2)} KiB\n`);
  await close();
  server?.kill();
  process.exit(0);
}

interface Node { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: Node[] }
const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
const bytes: Record<string, number> = { raw: 0, base: 0, branch: 0 };
const byFn: Record<string, Map<string, number>> = { raw: new Map(), base: new Map(), branch: new Map() };
const walk = (node: Node, into: Map<string, number>) => {
  if (node.selfSize > 0) {
    const f = node.callFrame;
    const file = f.url.replace(/^.*\/(node_modules\/)?/, '');
    const name = /^index\.js$/.test(file) ? `${f.functionName || '(anon)'} (keyplex)` : `${f.functionName || '(anon)'} ${file}:${f.lineNumber + 1}`;
    into.set(name, (into.get(name) ?? 0) + node.selfSize);
  }
  for (const c of node.children) walk(c, into);
};
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < VARIANTS.length; i++) {
    const v = VARIANTS[(i + r) % VARIANTS.length]!;
    await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    await run(v, n);
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: Node } };
    const m = new Map<string, number>();
    walk(profile.head, m);
    for (const [k, b] of m) {
      byFn[v]!.set(k, (byFn[v]!.get(k) ?? 0) + b);
      bytes[v] = bytes[v]! + b;
    }
  }
}
const per = (b: number) => b / (n * rounds);
for (const v of VARIANTS) process.stdout.write(`${v.padEnd(6)} ${(per(bytes[v]!) / 1024).toFixed(1)} KiB allocated per ${unit} (sampled)\n`);
const diff = (a: string, b: string) => {
  const d = new Map<string, number>();
  for (const [k, x] of byFn[a]!) d.set(k, per(x));
  for (const [k, x] of byFn[b]!) d.set(k, (d.get(k) ?? 0) - per(x));
  process.stdout.write(`\n== ${a} − ${b}, bytes per ${unit} (largest)\n`);
  for (const [k, x] of [...d].sort((p, q) => q[1] - p[1]).slice(0, top)) process.stdout.write(`${x.toFixed(0).padStart(8)}  ${k}\n`);
};
diff('branch', 'raw');
diff('branch', 'base');
session.disconnect();
await close();
server?.kill();

