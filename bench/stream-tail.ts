/**
 * Where the sequential streaming tail comes from (not part of `npm run
 * bench`): the raw SDK and two keyplex builds (bench/ab-lib.ts) on the
 * `sse-rl` fake fetch, rounds of sequential streams timed as scenario 1b
 * times them (a turn of the loop every YIELD_EVERY streams), each
 * young-generation collection located in time. Per round and variant: p99,
 * the number of collections, the median collection's pause, and the slowest
 * streams with their place after the last turn (`i % 16`) and the start of
 * the nearest collection relative to the stream's (µs).
 *
 * What it showed (2026-12-02, 2 cores, load ~1): the slowest 1% are the
 * first streams after a collection (offsets −2 to −6 ms: V8 runs the
 * collection as a task, in the loop's turn; the stream that follows runs on
 * cold caches: raw 0.8-1.7 ms, keyplex 1.1-2.1 ms, against p50s of ~120 and
 * ~200 µs). None of the timed streams held a collection. Raw had 12-14
 * collections per 1,500 streams, keyplex 15-16: the p99 of 1,500 (its 15th
 * slowest) is one of those post-collection streams for keyplex in most
 * rounds and for raw in few, so the added p99 swings with a collection or
 * two per round. A stream after a plain turn is slower too (keyplex 692 µs,
 * raw 357 µs, median), after a 2 ms sleep more
 * so (JSON: raw 315, keyplex 421 µs): what keyplex adds grows with how cold
 * the caches are, as on loopback.
 *
 *   npm run build && node bench/stream-tail.ts bench/out/base/index.js dist/index.js [rounds]
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { abClients } from './ab-lib.ts';
import { OPENAI_RATE_HEADERS } from './hotpath.ts';
import { CHAT_BODY, CHAT_SSE, median, quantile, sorted, YIELD_EVERY } from './lib.ts';

const [basePath, branchPath, roundsArg] = process.argv.slice(2);
if (!basePath || !branchPath) throw new Error('usage: node bench/stream-tail.ts <base dist/index.js> <branch dist/index.js> [rounds]');
const headers = { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
const fetch = (async () => new Response(CHAT_SSE, { status: 200, headers })) as typeof globalThis.fetch;
const { clients, close } = await abClients(basePath, branchPath, fetch);
const VARIANTS = ['raw', 'base', 'branch'];
const N = 1500;
const ROUNDS = Number(roundsArg ?? 4);

let collections: { start: number; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) collections.push({ start: e.startTime, ms: e.duration });
}).observe({ entryTypes: ['gc'] });

const stream = (v: string) => async () => {
  const s = await clients[v]!.chat.completions.create({ ...CHAT_BODY, stream: true });
  for await (const _ of s);
};
for (const v of VARIANTS) for (let i = 0; i < N; i++) await stream(v)();

for (let round = 0; round < ROUNDS; round++) {
  for (const v of round % 2 ? [...VARIANTS].reverse() : VARIANTS) {
    await turn();
    collections = [];
    const starts = new Float64Array(N);
    const ends = new Float64Array(N);
    const call = stream(v);
    for (let i = 0; i < N; i++) {
      starts[i] = performance.now();
      await call();
      ends[i] = performance.now();
      if ((i + 1) % YIELD_EVERY === 0) await turn();
    }
    await turn();
    await turn();
    const us = Array.from(starts, (s, i) => (ends[i]! - s) * 1000);
    const slowest = Array.from(us.keys()).sort((a, b) => us[b]! - us[a]!).slice(0, 16);
    const nearest = (i: number) => collections.reduce((best, c) => (Math.abs(c.start - starts[i]!) < Math.abs(best) ? c.start - starts[i]! : best), Infinity) * 1000;
    const held = Array.from(starts).filter((s, i) => collections.some((c) => c.start < ends[i]! && c.start + c.ms > s)).length;
    console.log(
      `${v.padEnd(6)} p50 ${quantile(sorted(us), 0.5).toFixed(0)} p99 ${quantile(sorted(us), 0.99).toFixed(0)} µs | ${collections.length} collections (median ${median(collections.map((c) => c.ms * 1000)).toFixed(0)} µs), ${held} inside a stream | slowest (i % ${YIELD_EVERY}: µs @ nearest collection µs): ${slowest.map((i) => `${i % YIELD_EVERY}: ${us[i]!.toFixed(0)} @ ${nearest(i).toFixed(0)}`).join(', ')}`,
    );
  }
}
await close();
