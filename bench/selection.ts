/**
 * Scenario 5 — key selection cost at 10, 1,000 and 10,000 keys: the whole
 * in-process pipeline with one provider holding N keys, each built-in
 * selector's `select()` alone, and heap bytes per key (measured in a child
 * process run with `--expose-gc`: this file with `--heap-child`).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import * as keyplex from '../dist/index.js';
import { KeyManager, LeastUsedSelector, RandomSelector, RoundRobinSelector, WeightedSelector, type KeySelector, type KeyView, type SelectContext } from '../dist/index.js';
import { CHAT_BODY, CHAT_JSON, Resources, cannedFetch, fakeKey, fakeKeys, fmt, interleaved, latencies, log, makeManager, mark, mean, median, MODEL, quantile, sorted, YIELD_EVERY, type Scenario } from './lib.ts';

const SIZES = [10, 1_000, 10_000] as const;
const RR_10K = '10000-round-robin';
/** The built-in selector classes `dist/` exports (`HeadroomSelector` when the build exports it). */
const SELECTORS: Record<string, new () => KeySelector> = {
  'round-robin': RoundRobinSelector,
  'least-used': LeastUsedSelector,
  weighted: WeightedSelector,
  random: RandomSelector,
};
const headroomClass = (keyplex as unknown as Record<string, unknown>).HeadroomSelector;
if (typeof headroomClass === 'function') SELECTORS.headroom = headroomClass as new () => KeySelector;

/** Keeps selector results observable, so the loop cannot be optimised away. */
let sink = 0;

function keyViews(n: number): KeyView[] {
  return Array.from({ length: n }, (_, i) => ({ id: `key-${i}`, provider: 'p0', weight: 1 + (i % 3), inFlight: 0, requests: 0, headroom: 1 - (i % 10) / 20 }));
}

/** ns per `select()` call over `keys`, calling in growing batches for about `budgetMs`. */
function nsPerSelect(selector: KeySelector, keys: readonly KeyView[], budgetMs: number): number {
  const ctx: SelectContext = { provider: 'p0', model: MODEL, requestId: 'bench', attempt: 1 };
  const t0 = process.hrtime.bigint();
  const stop = t0 + BigInt(Math.round(budgetMs * 1e6));
  let calls = 0;
  for (let batch = 1; ; batch = Math.min(batch * 2, 8192)) {
    for (let i = 0; i < batch; i++) sink += selector.select(keys, ctx)?.weight ?? 0;
    calls += batch;
    const now = process.hrtime.bigint();
    if (now >= stop || calls >= 50_000_000) return Number(now - t0) / calls;
  }
}

interface HeapFigures {
  perKeyBytes: number;
  managerOf10000Bytes: number;
  managerOf1Bytes: number;
  /** Heap still held after GC per completed request, by client. */
  retainedPerRequestBytes: { raw: number; wrapped: number };
  /** Requests each measurement ran (10,000, or fewer if the 10 s cap ended it). */
  retainedRequests: { raw: number; wrapped: number };
}

/** Heap figures (run with --expose-gc). Key strings exist before the baseline, so they are not counted. */
async function measureHeap(quick: boolean): Promise<HeapFigures> {
  const gc = globalThis.gc;
  if (typeof gc !== 'function') throw new Error('measureHeap needs --expose-gc');
  const settle = async (): Promise<number> => {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20)); // lets finalizers run
    gc();
    return process.memoryUsage().heapUsed;
  };
  const grow = (n: number): number => {
    const options = { providers: { p0: { baseURL: 'https://p0.bench.invalid/v1', keys: Array.from({ length: n }, fakeKey), models: [MODEL] } } };
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const manager = new KeyManager(options);
    gc();
    gc();
    const after = process.memoryUsage().heapUsed;
    sink += manager.stats().totals.requests; // keeps the manager alive until after the reading
    closing.push(manager.close());
    return after - before;
  };
  const closing: Promise<void>[] = [];
  grow(10); // warm-up: lazily built module state is not the manager's
  const of1 = median([grow(1), grow(1), grow(1)]);
  const of10000 = median([grow(10_000), grow(10_000), grow(10_000)]);
  await Promise.all(closing);

  // Heap still held after many requests through one client, in-process with the fake fetch.
  const fetch = cannedFetch(CHAT_JSON, 'application/json');
  const { manager } = makeManager({ keys: fakeKeys(3, 10), baseURL: (id) => `https://${id}.bench.invalid/v1`, fetch, events: true });
  const clients = {
    raw: new OpenAI({ apiKey: fakeKey(), baseURL: 'https://raw.bench.invalid/v1', fetch, maxRetries: 0 }),
    wrapped: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
  };
  const requests = quick ? 3_000 : 10_000;
  const retained = { raw: 0, wrapped: 0 };
  const ran = { raw: 0, wrapped: 0 };
  try {
    for (const v of ['raw', 'wrapped'] as const) {
      const call = () => clients[v].chat.completions.create(CHAT_BODY);
      await latencies(call, quick ? 1_000 : 5_000, 5_000); // warm-up
      const before = await settle();
      ran[v] = (await latencies(call, requests, 10_000)).length;
      retained[v] = ((await settle()) - before) / ran[v];
    }
  } finally {
    await manager.close();
  }
  return { perKeyBytes: of10000 / 10_000, managerOf10000Bytes: of10000, managerOf1Bytes: of1, retainedPerRequestBytes: retained, retainedRequests: ran };
}

async function heapFigures(quick: boolean): Promise<{ figures: HeapFigures; where: string }> {
  if (typeof globalThis.gc === 'function') return { figures: await measureHeap(quick), where: 'in the benchmark process (it has --expose-gc)' };
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--heap-child', ...(quick ? ['--quick'] : [])], { timeout: 60_000 });
  return { figures: JSON.parse(stdout) as HeapFigures, where: 'in a child process run with `node --expose-gc`' };
}

/** A per-request retention above twice the raw client's (the noise floor) and above 50 B is worth a line. */
function retentionNote(r: { raw: number; wrapped: number }): string {
  const extra = r.wrapped - r.raw;
  if (extra > 50 && r.wrapped > 2 * r.raw) {
    return `After GC, the wrapped client still holds ${fmt(extra, 0)} B per request more than the raw SDK (${fmt(r.raw, 0)} B for raw is this measurement's noise floor): ${fmt((extra * 1e6) / 2 ** 20, 0)} MiB per million requests if it never shrinks.`;
  }
  return `No heap retained per request beyond the noise floor: ${fmt(r.wrapped, 0)} B wrapped vs ${fmt(r.raw, 0)} B raw after GC.`;
}

export const selection: Scenario = async ({ quick }) => {
  const plan = quick
    ? { warmup: 500, warmupMs: 400, rounds: 3, n: 400, capMs: 250, selRounds: 3, selBudgetMs: 15 }
    : { warmup: 3000, warmupMs: 1500, rounds: 6, n: 2000, capMs: 1200, selRounds: 5, selBudgetMs: 80 };

  // (a) The pipeline with one provider holding N keys.
  const fetch = cannedFetch(CHAT_JSON, 'application/json');
  const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;
  // Variants: the raw SDK, the default selection at each size, and round-robin at 10,000 keys.
  const open = new Resources();
  const managed = (name: string, extra?: Parameters<typeof makeManager>[0]['extra']) =>
    open.add(`the ${name} manager`, makeManager({ keys: fakeKeys(1, name === RR_10K ? 10_000 : Number(name)), baseURL, fetch, events: true, ...(extra ? { extra } : {}) }).manager, (m) => m.close());
  const managers = new Map(SIZES.map((n) => [String(n), managed(String(n))]));
  managers.set(RR_10K, managed(RR_10K, { keySelection: 'round-robin' }));
  const clients: Record<string, { chat: OpenAI['chat'] }> = { raw: new OpenAI({ apiKey: fakeKey(), baseURL: baseURL('raw'), fetch, maxRetries: 0 }) };
  for (const [v, m] of managers) clients[v] = m.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const variants = ['raw', ...managers.keys()];
  const call = (v: string) => () => clients[v]!.chat.completions.create(CHAT_BODY);
  let rounds: Map<string, { p50: number; mean: number; n: number }[]>;
  try {
    log('selection: pipeline warm-up');
    for (const v of variants) await latencies(call(v), plan.warmup, plan.warmupMs);
    log('selection: pipeline with 10 / 1,000 / 10,000 keys');
    rounds = await interleaved(plan.rounds, variants, async (v) => {
      const s = sorted(await latencies(call(v), plan.n, plan.capMs));
      return { p50: quantile(s, 0.5), mean: mean(s), n: s.length };
    });
  } finally {
    await open.closeAll();
  }
  const perRound = (v: string, base: string, f: 'p50' | 'mean') => rounds.get(v)!.map((r, i) => r[f] - rounds.get(base)![i]![f]);
  const pipeline = Object.fromEntries(
    [...managers.keys()].map((v) => [
      v,
      {
        p50Us: median(rounds.get(v)!.map((r) => r.p50)),
        meanUs: median(rounds.get(v)!.map((r) => r.mean)),
        addedVsRawP50Us: median(perRound(v, 'raw', 'p50')),
        deltaVs10P50Us: median(perRound(v, '10', 'p50')),
        deltaVs10MeanUs: median(perRound(v, '10', 'mean')),
        requestsPerRound: median(rounds.get(v)!.map((r) => r.n)),
      },
    ]),
  );
  const rawP50 = median(rounds.get('raw')!.map((r) => r.p50));

  // (b) Each selector's select() alone.
  log('selection: select() alone');
  const selectors: Record<string, Record<string, number>> = {};
  for (const [name, Selector] of Object.entries(SELECTORS)) {
    selectors[name] = {};
    for (const n of SIZES) {
      const keys = keyViews(n);
      const selector = new Selector();
      nsPerSelect(selector, keys, plan.selBudgetMs); // warm-up
      selectors[name][n] = median(Array.from({ length: plan.selRounds }, () => nsPerSelect(selector, keys, plan.selBudgetMs)));
    }
  }

  // (c) Heap per key.
  log('selection: heap per key');
  const heap = await heapFigures(quick);

  const d10k = pipeline['10000']!.deltaVs10P50Us;
  const ran = heap.figures.retainedRequests;
  const heapRequestsLabel = ran.raw === ran.wrapped ? ran.raw.toLocaleString('en-US') : `${ran.raw.toLocaleString('en-US')} (raw) / ${ran.wrapped.toLocaleString('en-US')} (wrapped)`;
  const n10k = pipeline['10000']!.requestsPerRound;
  return {
    id: 'selection',
    title: '5. Key selection cost and memory per key',
    method: [
      `Pipeline: the in-process setup of scenario 1 (fake \`fetch\`, same listeners), with one provider holding N fake keys and the manager's default key selection, N = 10, 1,000, 10,000; plus 10,000 keys with \`keySelection: 'round-robin'\` (O(1) pick, so the difference isolates the default selector's share) and the raw client; ${plan.rounds} interleaved rounds × ${plan.n} sequential requests per variant (or ${plan.capMs / 1000} s per round, whichever ends first; the 10,000-key default-selection rounds completed ${n10k} requests at the median) after ${plan.warmup} warm-up requests (at most ${plan.warmupMs / 1000} s) each. µs per request is the per-round p50 (and mean), median across rounds; differences are taken per round, then the median.`,
      `\`select()\` alone: each built-in selector class \`dist/\` exports, over an array of N plain \`KeyView\` objects (weights 1–3, headroom 0.55–1, nothing in flight; plain data, so a real key's computed fields cost nothing here), called in growing batches for ~${plan.selBudgetMs} ms per round, ${plan.selRounds} rounds after one warm-up round; ns per call = elapsed (\`process.hrtime.bigint()\`) ÷ calls, median across rounds.`,
      `Heap: measured ${heap.where}: \`heapUsed\` after two \`gc()\` calls before and after \`new KeyManager(...)\` with one provider holding 10,000 fake keys (key strings and the options object built before the first reading, so the secrets themselves are not counted), divided by 10,000; median of 3 builds after a warm-up build. Heap held per request: the scenario 1 setup (fake \`fetch\`, 3 × 10 keys, listeners), ${quick ? '1,000' : '5,000'} warm-up requests, then \`heapUsed\` after GC (twice, 20 ms apart so finalizers run) before and after ${heapRequestsLabel} sequential requests (yielding to the event loop every ${YIELD_EVERY}), ÷ requests; a client that keeps nothing shows ≈ 0.`,
    ],
    tables: [
      {
        title: 'Pipeline cost per request by pool size (µs, concurrency 1)',
        headers: ['keys in the provider, selection', 'p50', 'mean', 'added vs raw SDK (p50)', 'Δ vs 10 keys (p50)', 'Δ vs 10 keys (mean)', 'target'],
        rows: [
          ['raw SDK (no keyplex)', fmt(rawP50), fmt(median(rounds.get('raw')!.map((r) => r.mean))), '', '', '', ''],
          ...[...SIZES.map(String), RR_10K].map((v) => {
            const p = pipeline[v]!;
            const label = v === RR_10K ? '10,000, `round-robin`' : `${Number(v).toLocaleString('en-US')}, default selection`;
            return [
              label,
              fmt(p.p50Us),
              fmt(p.meanUs),
              fmt(p.addedVsRawP50Us),
              v === '10' ? '' : fmt(p.deltaVs10P50Us),
              v === '10' ? '' : fmt(p.deltaVs10MeanUs),
              v === '10000' ? mark(d10k <= 2, 'Δ ≤ 2 µs') : '',
            ];
          }),
        ],
      },
      {
        title: '`select()` alone (ns per call)',
        headers: ['selector', ...SIZES.map((n) => `${n.toLocaleString('en-US')} keys`), 'target at 10,000'],
        rows: Object.entries(selectors).map(([name, byN]) => [name, ...SIZES.map((n) => fmt(byN[n]!, 0)), mark(byN[10_000]! <= 2000, '≤ 2,000 ns')]),
      },
      {
        title: 'Memory',
        headers: ['figure', 'value'],
        rows: [
          ['heap bytes per key (manager with 10,000 keys ÷ 10,000)', fmt(heap.figures.perKeyBytes, 0)],
          ['heap growth of a manager with 10,000 keys', `${fmt(heap.figures.managerOf10000Bytes / 2 ** 20, 2)} MiB`],
          ['heap growth of a manager with 1 key (fixed cost)', `${fmt(heap.figures.managerOf1Bytes / 1024, 1)} KiB`],
          [`heap still held after GC per request, raw SDK (${ran.raw.toLocaleString('en-US')} requests)`, fmt(heap.figures.retainedPerRequestBytes.raw, 0)],
          [`heap still held after GC per request, wrapped (${ran.wrapped.toLocaleString('en-US')} requests)`, fmt(heap.figures.retainedPerRequestBytes.wrapped, 0)],
        ],
      },
    ],
    notes: [retentionNote(heap.figures.retainedPerRequestBytes)],
    data: { plan, rawP50Us: rawP50, pipeline, pipelineRounds: Object.fromEntries(rounds), selectNs: selectors, heap: heap.figures, sink: sink % 2 },
  };
};

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--heap-child') {
  process.stdout.write(JSON.stringify(await measureHeap(process.argv[3] === '--quick')));
}
