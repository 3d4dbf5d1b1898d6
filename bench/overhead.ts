/**
 * Scenario 1 — overhead, in-process: the same `openai` client calling a fake
 * `fetch` that answers at once, raw versus wrapped by keyplex. With no
 * network, every microsecond of difference is keyplex's pipeline.
 */
import OpenAI from 'openai';
import {
  Resources,
  CHAT_BODY,
  CHAT_JSON,
  CHAT_SSE,
  cannedFetch,
  fakeKey,
  fakeKeys,
  fmt,
  interleaved,
  latencies,
  log,
  makeManager,
  mark,
  median,
  quantile,
  sorted,
  throughput,
  type Scenario,
  type ThroughputSample,
} from './lib.ts';

export const CONCURRENCIES = [1, 64, 256] as const;

export interface LatencyRound {
  p50: number;
  p99: number;
  n: number;
}

export function latencyRound(samples: Float64Array): LatencyRound {
  const s = sorted(samples);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), n: s.length };
}

/** Added latency per round (wrapped − raw, rounds paired by index), then the median across rounds. */
export function addedLatency(rounds: Map<string, LatencyRound[]>): { raw: LatencyRound; wrapped: LatencyRound; addedP50: number; addedP99: number; perRound: { p50: number; p99: number }[] } {
  const raw = rounds.get('raw')!;
  const wrapped = rounds.get('wrapped')!;
  const perRound = raw.map((r, i) => ({ p50: wrapped[i]!.p50 - r.p50, p99: wrapped[i]!.p99 - r.p99 }));
  return {
    raw: { p50: median(raw.map((r) => r.p50)), p99: median(raw.map((r) => r.p99)), n: raw.reduce((a, r) => a + r.n, 0) },
    wrapped: { p50: median(wrapped.map((r) => r.p50)), p99: median(wrapped.map((r) => r.p99)), n: wrapped.reduce((a, r) => a + r.n, 0) },
    addedP50: median(perRound.map((r) => r.p50)),
    addedP99: median(perRound.map((r) => r.p99)),
    perRound,
  };
}

/** Throughput per round, and the ratio wrapped ÷ raw per round, then medians. */
export function throughputRatio(rounds: Map<string, ThroughputSample[]>): { rawRps: number; wrappedRps: number; ratio: number; rawCpuUs: number; wrappedCpuUs: number; cpuRatio: number; perRound: number[] } {
  const raw = rounds.get('raw')!;
  const wrapped = rounds.get('wrapped')!;
  const perRound = raw.map((r, i) => wrapped[i]!.rps / r.rps);
  return {
    rawRps: median(raw.map((r) => r.rps)),
    wrappedRps: median(wrapped.map((r) => r.rps)),
    ratio: median(perRound),
    rawCpuUs: median(raw.map((r) => r.cpuUsPerCall)),
    wrappedCpuUs: median(wrapped.map((r) => r.cpuUsPerCall)),
    cpuRatio: median(raw.map((r, i) => wrapped[i]!.cpuUsPerCall / r.cpuUsPerCall)),
    perRound,
  };
}

export const overhead: Scenario = async ({ quick }) => {
  const plan = quick
    ? { warmup: 1000, latRounds: 4, latN: 1000, tpRounds: 3, tpN: 1500, sseRounds: 3, sseN: 500, capMs: 400 }
    : { warmup: 3000, latRounds: 12, latN: 3000, tpRounds: 6, tpN: 4000, sseRounds: 8, sseN: 1500, capMs: 1200 };
  // Every loop also ends after capMs, so a slower pipeline shortens rounds instead of the budget.
  const { capMs } = plan;

  const jsonFetch = cannedFetch(CHAT_JSON, 'application/json');
  const sseFetch = cannedFetch(CHAT_SSE, 'text/event-stream; charset=utf-8');
  const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;
  const rawClient = (fetch: typeof globalThis.fetch) => new OpenAI({ apiKey: fakeKey(), baseURL: baseURL('raw'), fetch, maxRetries: 0 });
  const open = new Resources();
  const json = open.add('the JSON manager', makeManager({ keys: fakeKeys(3, 10), baseURL, fetch: jsonFetch, events: true }), (m) => m.manager.close());
  const sse = open.add('the SSE manager', makeManager({ keys: fakeKeys(3, 10), baseURL, fetch: sseFetch, events: true }), (m) => m.manager.close());
  try {
    const clients = {
      raw: rawClient(jsonFetch),
      wrapped: json.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
    };
    const streamClients = {
      raw: rawClient(sseFetch),
      wrapped: sse.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
    };
    const call = (variant: string) => {
      const client = variant === 'raw' ? clients.raw : clients.wrapped;
      return () => client.chat.completions.create(CHAT_BODY);
    };
    const streamCall = (variant: string) => {
      const client = variant === 'raw' ? streamClients.raw : streamClients.wrapped;
      return async () => {
        const stream = await client.chat.completions.create({ ...CHAT_BODY, stream: true });
        let pieces = 0;
        for await (const chunk of stream) pieces += chunk.choices.length;
        return pieces;
      };
    };
    const variants = ['raw', 'wrapped'] as const;

    log('overhead: warm-up');
    for (const v of variants) {
      await latencies(call(v), plan.warmup, capMs);
      await throughput(call(v), plan.warmup, 64, capMs);
      await latencies(streamCall(v), plan.warmup / 5, capMs);
    }

    log('overhead: latency at concurrency 1');
    const lat = addedLatency(await interleaved(plan.latRounds, variants, async (v) => latencyRound(await latencies(call(v), plan.latN, capMs))));

    const tp: Record<number, ReturnType<typeof throughputRatio>> = {};
    for (const c of CONCURRENCIES) {
      log(`overhead: throughput at concurrency ${c}`);
      tp[c] = throughputRatio(await interleaved(plan.tpRounds, variants, (v) => throughput(call(v), plan.tpN, c, capMs)));
    }

    log('overhead: streaming latency at concurrency 1');
    const stream = addedLatency(await interleaved(plan.sseRounds, variants, async (v) => latencyRound(await latencies(streamCall(v), plan.sseN, capMs))));

    const events = { json: json.tally, sse: sse.tally };

    const p50Ok = lat.addedP50 <= 25;
    const p99Ok = lat.addedP99 <= 250;
    const ratio256 = tp[256]!.ratio;
    return {
      id: 'overhead',
      title: '1. Overhead, in-process (fake fetch, no network)',
      method: [
        `The same \`openai\` client calls a fake \`fetch\` that returns a canned chat completion \`Response\` at once. Raw: \`new OpenAI({ fetch: fakeFetch, maxRetries: 0 })\`. Wrapped: \`manager.wrap(new OpenAI(...))\`, the manager holding 3 providers × 10 fake keys, \`fetch: fakeFetch\`, with listeners on \`request\`, \`attempt\` and \`success\` (each bumps a counter); every other option at its default (no \`replyHeaders\`: the reply carries the upstream's headers only).`,
        `Latency: ${plan.latRounds} interleaved rounds (raw, wrapped, alternating which goes first) of ${plan.latN} sequential requests each (or ${plan.capMs / 1000} s, whichever ends first), after ${plan.warmup} warm-up requests per client; each request timed with \`process.hrtime.bigint()\`. Added latency = wrapped percentile − raw percentile within a round; the table gives the median of those per-round differences.`,
        `Throughput: closed loop, C workers issuing ${plan.tpN} requests in all per round (or ${plan.capMs / 1000} s), ${plan.tpRounds} interleaved rounds per concurrency; req/s = completed ÷ wall time (\`performance.now()\`); ratio = wrapped ÷ raw per round, median across rounds. CPU µs/request = process CPU time (user + system) ÷ requests.`,
        `Streaming: the fake fetch answers a canned SSE body (role chunk, 9 content chunks, finish chunk, usage chunk, \`[DONE]\`); each request is timed from \`create()\` until the stream is fully iterated; ${plan.sseRounds} rounds × ${plan.sseN} requests. The caller does not ask for usage, so keyplex injects \`stream_options.include_usage\` and strips the usage chunk (its normal path).`,
      ],
      tables: [
        {
          title: 'Added latency per request, concurrency 1 (µs)',
          headers: ['', 'raw', 'wrapped', 'added (median of per-round diffs)', 'target'],
          rows: [
            ['p50', fmt(lat.raw.p50), fmt(lat.wrapped.p50), fmt(lat.addedP50), mark(p50Ok, '≤ 25 µs')],
            ['p99', fmt(lat.raw.p99), fmt(lat.wrapped.p99), fmt(lat.addedP99), mark(p99Ok, '≤ 250 µs')],
            ['streaming p50', fmt(stream.raw.p50), fmt(stream.wrapped.p50), fmt(stream.addedP50), mark(stream.addedP50 <= 25, '≤ 25 µs')],
            ['streaming p99', fmt(stream.raw.p99), fmt(stream.wrapped.p99), fmt(stream.addedP99), mark(stream.addedP99 <= 250, '≤ 250 µs')],
          ],
        },
        {
          title: 'Throughput (closed loop)',
          headers: ['concurrency', 'raw req/s', 'wrapped req/s', 'ratio wrapped ÷ raw', 'raw CPU µs/req', 'wrapped CPU µs/req', 'target'],
          rows: CONCURRENCIES.map((c) => {
            const t = tp[c]!;
            return [String(c), fmt(t.rawRps, 0), fmt(t.wrappedRps, 0), fmt(t.ratio, 3), fmt(t.rawCpuUs), fmt(t.wrappedCpuUs), c === 256 ? mark(ratio256 >= 0.97, '≥ 0.97') : ''];
          }),
        },
      ],
      notes: [
        `At concurrency 1 a wrapped call takes ${fmt(lat.wrapped.p50 / lat.raw.p50, 2)}× the raw SDK call at p50 (${fmt(lat.raw.p50)} → ${fmt(lat.wrapped.p50)} µs); at concurrency 256 keyplex adds ${fmt(tp[256]!.wrappedCpuUs - tp[256]!.rawCpuUs)} µs of CPU per request (${fmt(tp[256]!.rawCpuUs)} → ${fmt(tp[256]!.wrappedCpuUs)}).`,
        `Event listeners saw ${events.json.request} request, ${events.json.attempt} attempt and ${events.json.success} success events on the JSON manager (${events.sse.success} successes on the streaming one).`,
      ],
      data: { plan, latency: lat, throughput: tp, streaming: stream, events },
    };
  } finally {
    await open.closeAll();
  }
};
