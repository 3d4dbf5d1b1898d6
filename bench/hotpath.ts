/**
 * Scenario 1b — the hot path with what real providers send: OpenAI's six
 * `x-ratelimit-*` headers on every reply, and replies of 8 and 64 KiB as
 * well as the short canned one. Raw SDK and keyplex interleaved in one run;
 * client CPU per request (`process.cpuUsage`) and throughput at concurrency
 * 64; streaming added p99; `stats()` at 10,000 keys; heap per used key.
 *
 * Also a command line for profiling one case in isolation (no interleaving,
 * so that a profiler or `valgrind --tool=callgrind` sees only that loop):
 *
 *   node bench/hotpath.ts --case json-rl --variant wrapped --n 2000
 *
 * Instruction counts per request: run it under callgrind with two `--n`
 * values and divide the difference (start-up cancels out). Run node with
 * `--single-threaded` (no concurrent compiler or GC threads): two runs of
 * one build side by side then agree to 0.02%, where without it they differ
 * by up to 5%. Runs at different times still move by ~3% (V8's GC
 * heuristics read the clock, and valgrind slows it 50-fold), so compare two
 * builds side by side, and repeat the pair. Take both `--n` past the
 * compiler's warm-up (4000 and 12000 for json-rl): below that TurboFan is
 * still compiling, and its work counts.
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *     node --single-threaded bench/hotpath.ts --case json-rl --variant wrapped --n 12000
 *
 * `callgrind_annotate --inclusive=no` on two such runs names V8's builtins,
 * runtime and GC (JIT-compiled code shows as bare addresses): the
 * difference between raw and wrapped per function says what keyplex makes
 * the engine do.
 *
 * Instructions are not time: `String.fromCharCode.apply` over a short byte
 * run counted fewer instructions than `TextDecoder.decode` and took 5× as
 * long (it copies the bytes into a list first; see 107bcb0). Confirm a cut
 * in time with bench/ab-fetch.ts, which measures keyplex's own work alone.
 */
import { constants as perf, PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { keyplex } from '../dist/index.js';
import { addedLatency, latencyRound } from './overhead.ts';
import {
  CHAT_BODY,
  CHAT_JSON,
  CHAT_SSE,
  fakeKey,
  fakeKeys,
  fmt,
  forceGc,
  interleaved,
  latencies,
  log,
  makeManager,
  mark,
  median,
  MODEL,
  throughput,
  YIELD_EVERY,
  type Scenario,
  type ThroughputSample,
} from './lib.ts';

/** The six rate-limit headers OpenAI sends on every reply, with typical values. */
export const OPENAI_RATE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-limit-tokens': '30000000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-remaining-tokens': '29999975',
  'x-ratelimit-reset-requests': '6ms',
  'x-ratelimit-reset-tokens': '0s',
});

/** The canned chat completion with its message grown so that the body is about `bytes` long. */
export function chatJsonOfSize(bytes: number): string {
  if (bytes <= CHAT_JSON.length) return CHAT_JSON;
  const reply = JSON.parse(CHAT_JSON) as { choices: { message: { content: string } }[] };
  const words = 'The quick brown fox jumps over the lazy dog. ';
  const grow = bytes - CHAT_JSON.length;
  reply.choices[0]!.message.content += words.repeat(Math.ceil(grow / words.length)).slice(0, grow);
  return JSON.stringify(reply);
}

interface Case {
  id: string;
  label: string;
  body: string;
  contentType: string;
  rateHeaders: boolean;
  stream: boolean;
  /** The manager's `replyHeaders` option (keyplex's four headers on each reply, which the SDK then formats): default off. */
  replyHeaders?: boolean;
  /** The body's events one per read, as a network delivers a stream (default: the whole body in one read). */
  split?: boolean;
}

const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream; charset=utf-8';
export const CASES: readonly Case[] = [
  { id: 'json', label: 'JSON 0.6 KiB, no rate-limit headers', body: CHAT_JSON, contentType: JSON_TYPE, rateHeaders: false, stream: false },
  { id: 'json-rl', label: 'JSON 0.6 KiB + 6 rate-limit headers', body: CHAT_JSON, contentType: JSON_TYPE, rateHeaders: true, stream: false },
  { id: 'json-rl-rh', label: 'JSON 0.6 KiB + 6 rate-limit headers, `replyHeaders: true`', body: CHAT_JSON, contentType: JSON_TYPE, rateHeaders: true, stream: false, replyHeaders: true },
  { id: 'json-8k-rl', label: 'JSON 8 KiB + 6 rate-limit headers', body: chatJsonOfSize(8 * 1024), contentType: JSON_TYPE, rateHeaders: true, stream: false },
  { id: 'json-64k-rl', label: 'JSON 64 KiB + 6 rate-limit headers', body: chatJsonOfSize(64 * 1024), contentType: JSON_TYPE, rateHeaders: true, stream: false },
  { id: 'sse-rl', label: 'SSE (13 events) + 6 rate-limit headers', body: CHAT_SSE, contentType: SSE_TYPE, rateHeaders: true, stream: true },
  { id: 'sse-rl-split', label: 'SSE (13 events, one per read) + 6 rate-limit headers', body: CHAT_SSE, contentType: SSE_TYPE, rateHeaders: true, stream: true, split: true },
];

/** Young-generation collections (scavenges) so far in this process. */
let scavenges = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === perf.NODE_PERFORMANCE_GC_MINOR) scavenges++;
}).observe({ entryTypes: ['gc'] });

/** The streaming case the added-latency target is measured on (the whole body in one read). */
const LATENCY_CASE = 'sse-rl';

/** A `fetch` answering every call at once with the case's body and headers (as a provider's reply would carry them). */
function caseFetch(c: Case): typeof globalThis.fetch {
  const headers: Record<string, string> = { 'content-type': c.contentType, 'x-request-id': 'req_bench', ...(c.rateHeaders ? OPENAI_RATE_HEADERS : {}) };
  if (!c.split) return async () => new Response(c.body, { status: 200, headers });
  const events = c.body.split('\n\n').filter(Boolean).map((e) => new TextEncoder().encode(`${e}\n\n`));
  const body = () => new ReadableStream<Uint8Array>({ start: (controller) => void (events.forEach((e) => controller.enqueue(e)), controller.close()) });
  return async () => new Response(body(), { status: 200, headers });
}

const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;

/** Raw and wrapped callers of one case; `close()` ends the manager. */
function caseCallers(c: Case): { call: (variant: string) => () => Promise<unknown>; close: () => Promise<void> } {
  const fetch = caseFetch(c);
  const raw = new OpenAI({ apiKey: fakeKey(), baseURL: baseURL('raw'), fetch, maxRetries: 0 });
  const { manager } = makeManager({ keys: fakeKeys(3, 10), baseURL, fetch, events: true, ...(c.replyHeaders ? { extra: { replyHeaders: true } } : {}) });
  const wrapped = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const call = (variant: string) => {
    const client = variant === 'raw' ? raw : wrapped;
    if (!c.stream) return () => client.chat.completions.create(CHAT_BODY);
    return async () => {
      const stream = await client.chat.completions.create({ ...CHAT_BODY, stream: true });
      let pieces = 0;
      for await (const chunk of stream) pieces += chunk.choices.length;
      return pieces;
    };
  };
  return { call, close: () => manager.close() };
}

const VARIANTS = ['raw', 'wrapped'] as const;

/** Per-round ratios (wrapped ÷ raw) of CPU per request and of throughput, then medians. */
function compare(rounds: Map<string, ThroughputSample[]>) {
  const raw = rounds.get('raw')!;
  const wrapped = rounds.get('wrapped')!;
  return {
    rawCpuUs: median(raw.map((r) => r.cpuUsPerCall)),
    wrappedCpuUs: median(wrapped.map((r) => r.cpuUsPerCall)),
    addedCpuUs: median(raw.map((r, i) => wrapped[i]!.cpuUsPerCall - r.cpuUsPerCall)),
    cpuRatio: median(raw.map((r, i) => wrapped[i]!.cpuUsPerCall / r.cpuUsPerCall)),
    rawRps: median(raw.map((r) => r.rps)),
    wrappedRps: median(wrapped.map((r) => r.rps)),
    rpsRatio: median(raw.map((r, i) => wrapped[i]!.rps / r.rps)),
  };
}

/** A manager over `count` keys (10 providers of `count / 10`), after enough requests, pinned to each provider in turn, for the selector to have used (nearly) every key. */
export async function manyKeysUsed(count: number, fetch: typeof globalThis.fetch) {
  const { manager } = makeManager({ keys: fakeKeys(10, count / 10), baseURL, fetch, events: true });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  for (let i = 0; i < count * 3; i += 64) {
    const pin = keyplex.options({ provider: `p${(i / 64) % 10}` });
    await Promise.all(Array.from({ length: 64 }, () => client.chat.completions.create(CHAT_BODY, pin)));
    await turn();
  }
  return manager;
}

/** A manager over `count` keys (10 providers), every key used once or more; stats() timed, heap per key measured. */
async function manyKeys(count: number, statsCalls: number): Promise<{ keys: number; usedKeys: number; heapPerKeyBytes: number; statsMs: number; statsCheapMs: number }> {
  const c = CASES[1]!;
  const fetch = caseFetch(c);
  forceGc();
  const before = process.memoryUsage().heapUsed;
  const manager = await manyKeysUsed(count, fetch);
  forceGc();
  const after = process.memoryUsage().heapUsed;
  const first = manager.stats();
  let usedKeys = 0;
  for (const p of Object.values(first.providers)) for (const k of p.keys) if (k.requests > 0) usedKeys++;
  const time = (f: () => unknown) => {
    const samples: number[] = [];
    for (let i = 0; i < statsCalls; i++) {
      const t0 = performance.now();
      f();
      samples.push(performance.now() - t0);
    }
    return median(samples);
  };
  const statsMs = time(() => manager.stats());
  // The cheap form without per-key detail (an unknown option to versions without it: then the same as stats()).
  const cheap = time(() => manager.stats({ keys: false } as never));
  await manager.close();
  return { keys: count, usedKeys, heapPerKeyBytes: (after - before) / count, statsMs, statsCheapMs: cheap };
}

export const hotpath: Scenario = async ({ quick }) => {
  const plan = quick ? { warmup: 1000, rounds: 3, n: 1500, sseRounds: 3, sseN: 400, capMs: 500 } : { warmup: 3000, rounds: 8, n: 4000, sseRounds: 8, sseN: 1500, capMs: 1500 };
  const results: Record<string, ReturnType<typeof compare>> = {};
  let streaming: ReturnType<typeof addedLatency> | undefined;
  // Per variant: scavenges during its sequential streams, and the streams timed.
  const collected: Record<string, { scavenges: number; streams: number }> = { raw: { scavenges: 0, streams: 0 }, wrapped: { scavenges: 0, streams: 0 } };
  for (const c of CASES) {
    const { call, close } = caseCallers(c);
    try {
      log(`hotpath: ${c.id}: warm-up`);
      for (const v of VARIANTS) await throughput(call(v), c.stream ? plan.warmup / 5 : plan.warmup, 64, plan.capMs);
      log(`hotpath: ${c.id}: throughput at concurrency 64`);
      results[c.id] = compare(await interleaved(plan.rounds, VARIANTS, (v) => throughput(call(v), c.stream ? plan.n / 4 : plan.n, 64, plan.capMs)));
      if (c.id === LATENCY_CASE) {
        log(`hotpath: ${c.id}: latency at concurrency 1`);
        streaming = addedLatency(
          await interleaved(plan.sseRounds, VARIANTS, async (v) => {
            const before = scavenges;
            const samples = await latencies(call(v), plan.sseN, plan.capMs);
            // The observer hears of a collection a turn or two after it.
            await turn();
            await turn();
            collected[v]!.scavenges += scavenges - before;
            collected[v]!.streams += samples.length;
            return latencyRound(samples);
          }),
        );
      }
    } finally {
      await close();
    }
  }
  log('hotpath: stats() and heap at 10,000 keys');
  const many = await manyKeys(10_000, quick ? 5 : 21);
  const rl = results['json-rl']!;
  const perThousand = (v: string) => (1000 * collected[v]!.scavenges) / Math.max(1, collected[v]!.streams);
  const flat = results['json-64k-rl']!.addedCpuUs - rl.addedCpuUs;
  return {
    id: 'hotpath',
    title: '1b. Hot path with real reply shapes (in-process, rate-limit headers, 8 and 64 KiB)',
    method: [
      `As scenario 1 (3 providers × 10 fake keys, listeners on \`request\`, \`attempt\`, \`success\`), but every reply carries OpenAI's six \`x-ratelimit-*\` headers (${Object.keys(OPENAI_RATE_HEADERS).join(', ')}) unless the row says otherwise, and the chat completion's message is grown to make 8 and 64 KiB bodies. The stream comes whole in one read, or (the row that says so) one event per read, as a network delivers it: what keyplex adds per chunk. keyplex adds none of its own headers to the replies (\`replyHeaders\` is off by default) except in the row that says \`replyHeaders: true\`, which shows what the SDK's formatting of those four costs.`,
      `Per case: ${plan.rounds} interleaved rounds (raw, wrapped, alternating which goes first) of a closed loop at concurrency 64, ${plan.n} requests (streams: ${plan.n / 4}) or ${plan.capMs / 1000} s per round. CPU µs/request = process CPU time (user + system, \`process.cpuUsage\`) ÷ requests; ratios wrapped ÷ raw per round, median across rounds. Streaming added p99: ${plan.sseRounds} interleaved rounds × ${plan.sseN} sequential streams (the stream in one read), each timed until fully iterated; median of per-round differences.`,
      `\`stats()\` at ${many.keys.toLocaleString('en-US')} keys (10 providers × 1,000), after ${(many.keys * 3).toLocaleString('en-US')} requests at concurrency 64 (${many.usedKeys.toLocaleString('en-US')} keys used): median of ${quick ? 5 : 21} calls. Heap per key: \`heapUsed\` after a forced GC with the manager built and used, minus before it was built, ÷ keys.`,
    ],
    tables: [
      {
        title: 'Client CPU and throughput at concurrency 64',
        headers: ['reply', 'raw CPU µs/req', 'wrapped CPU µs/req', 'added µs', 'CPU ratio', 'raw req/s', 'wrapped req/s', 'throughput ratio', 'target'],
        rows: CASES.map((c) => {
          const r = results[c.id]!;
          const target = c.id === 'json-rl' ? `${mark(r.cpuRatio <= 1.35, 'CPU ≤ 1.35×')}, ${mark(r.rpsRatio >= 0.75, 'throughput ≥ 0.75×')}` : '';
          return [c.label, fmt(r.rawCpuUs), fmt(r.wrappedCpuUs), fmt(r.addedCpuUs), fmt(r.cpuRatio, 2), fmt(r.rawRps, 0), fmt(r.wrappedRps, 0), fmt(r.rpsRatio, 3), target];
        }),
      },
      {
        title: 'Other targets',
        headers: ['figure', 'value', 'target'],
        rows: [
          ['added CPU, 64 KiB minus 0.6 KiB reply (µs/req)', fmt(flat), mark(flat <= 10, 'flat in reply size (≤ 10 µs)')],
          ['streaming added p50 (µs)', fmt(streaming!.addedP50), ''],
          ['streaming added p99 (µs)', fmt(streaming!.addedP99), mark(streaming!.addedP99 <= 150, '≤ 150 µs')],
          ['streaming added p99 per round (µs)', streaming!.perRound.map((r) => fmt(r.p99, 0)).join(' / '), ''],
          ['young-generation collections per 1,000 sequential streams, raw / wrapped', `${fmt(perThousand('raw'))} / ${fmt(perThousand('wrapped'))}`, ''],
          [`stats() at ${many.keys.toLocaleString('en-US')} keys (ms)`, fmt(many.statsMs, 2), mark(many.statsMs <= 2, '≤ 2 ms')],
          [`stats({ keys: false }) at ${many.keys.toLocaleString('en-US')} keys (ms)`, fmt(many.statsCheapMs, 3), mark(many.statsCheapMs <= 2, '≤ 2 ms')],
          ['heap per key, all used (bytes)', fmt(many.heapPerKeyBytes, 0), mark(many.heapPerKeyBytes <= 2048, '≤ 2 KiB')],
        ],
      },
    ],
    notes: [
      `Streaming p99: the slowest sequential streams are the first after a young-generation collection (V8 runs it between tasks, in the loop's turn every ${YIELD_EVERY} streams; that stream then runs on cold caches, 1-2 ms for both clients on this host, bench/stream-tail.ts). A round's p99 over ${plan.sseN} streams is one of them once ${Math.ceil(plan.sseN / 100)} or more collections fall in it, i.e. from 10 per 1,000 streams: the row above shows each client's rate, and the per-round figures move with it.`,
    ],
    data: { plan, cases: results, streaming, manyKeys: many, collectedDuringStreams: collected },
  };
};

/** `node bench/hotpath.ts --case <id> --variant raw|wrapped --n N`: one loop alone, for a profiler. */
async function profileOne(): Promise<void> {
  const { values } = parseArgs({ options: { case: { type: 'string', default: 'json-rl' }, variant: { type: 'string', default: 'wrapped' }, n: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '64' } } });
  if (values.case === 'many') {
    // Warmed first, as in the full run (where every case ran before): otherwise the code the SDK and keyplex
    // compile on first use counts as the keys' heap (~350 B per key at 10,000 keys).
    await manyKeys(1_000, 1);
    process.stderr.write(`${JSON.stringify(await manyKeys(Number(values.n), 21))}\n`);
    return;
  }
  const c = CASES.find((x) => x.id === values.case);
  if (!c) throw new Error(`unknown case '${values.case}': ${CASES.map((x) => x.id).join(', ')}`);
  const { call, close } = caseCallers(c);
  const sample = await throughput(call(values.variant!), Number(values.n), Number(values.concurrency), 1e9);
  await close();
  process.stderr.write(`${c.id} ${values.variant}: ${sample.completed} requests, ${fmt(sample.cpuUsPerCall)} CPU µs/req, ${fmt(sample.rps, 0)} req/s (model ${MODEL})\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await profileOne();
