/**
 * Hooks and the response cache, in-process: what an installed no-op hook
 * adds to a request (versus none), what a hook that asks for the JSON body
 * adds, and what a cache hit costs — the same fake `fetch` answering at once,
 * so every microsecond of difference is keyplex's.
 */
import OpenAI from 'openai';
import type { KeyManagerOptions } from '../dist/index.js';
import { Resources, CHAT_BODY, CHAT_JSON, cannedFetch, fakeKeys, fmt, interleaved, latencies, log, makeManager, median, type Scenario } from './lib.ts';
import { latencyRound, type LatencyRound } from './overhead.ts';

const noop = () => {};
const VARIANTS: Record<string, Partial<KeyManagerOptions>> = {
  'no hooks': {},
  'no-op hooks': { hooks: { beforeAttempt: noop, afterResponse: noop } },
  "no-op hooks, body: 'json'": { hooks: { beforeAttempt: { body: 'json', run: noop }, afterResponse: { body: 'json', run: noop } } },
  'cache hit': { cache: { ttlMs: 3_600_000 } },
};

/** Median across rounds of each round's p50 and p99, and the median per-round difference from `base`. */
function summary(rounds: Map<string, LatencyRound[]>, variant: string, base: string) {
  const mine = rounds.get(variant)!;
  const theirs = rounds.get(base)!;
  return {
    p50: median(mine.map((r) => r.p50)),
    p99: median(mine.map((r) => r.p99)),
    addedP50: median(mine.map((r, i) => r.p50 - theirs[i]!.p50)),
    addedP99: median(mine.map((r, i) => r.p99 - theirs[i]!.p99)),
  };
}

export const hooks: Scenario = async ({ quick }) => {
  const plan = quick ? { warmup: 1000, rounds: 4, n: 1000, capMs: 400 } : { warmup: 3000, rounds: 12, n: 3000, capMs: 1200 };
  const fetch = cannedFetch(CHAT_JSON, 'application/json');
  const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;
  const open = new Resources();
  const clients = new Map<string, OpenAI>();
  for (const [name, extra] of Object.entries(VARIANTS)) {
    const m = open.add(`the '${name}' manager`, makeManager({ keys: fakeKeys(3, 10), baseURL, fetch, events: true, extra }), (x) => x.manager.close());
    clients.set(name, m.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })));
  }
  try {
    const names = Object.keys(VARIANTS);
    const call = (variant: string) => {
      const client = clients.get(variant)!;
      return () => client.chat.completions.create(CHAT_BODY);
    };
    log('hooks: warm-up');
    for (const v of names) await latencies(call(v), plan.warmup, plan.capMs);
    log('hooks: latency at concurrency 1');
    const rounds = await interleaved(plan.rounds, names, async (v) => latencyRound(await latencies(call(v), plan.n, plan.capMs)));
    const rows = names.map((v) => {
      const s = summary(rounds, v, 'no hooks');
      return [v, fmt(s.p50), fmt(s.p99), v === 'no hooks' ? '—' : fmt(s.addedP50), v === 'no hooks' ? '—' : fmt(s.addedP99)];
    });
    const noopAdded = summary(rounds, 'no-op hooks', 'no hooks').addedP50;
    return {
      id: 'hooks',
      title: 'Hooks and the response cache, in-process (fake fetch, no network)',
      method: [
        `Four managers (3 providers × 10 fake keys, the same fake \`fetch\` answering a canned chat completion at once, listeners on \`request\`, \`attempt\`, \`success\`): no hooks; a no-op \`beforeAttempt\` and \`afterResponse\`; the same with \`body: 'json'\` (the body parsed, handed over and re-serialised; the answer read and parsed for the hook); a response cache (every timed request after the first is a hit).`,
        `${plan.rounds} interleaved rounds (the order rotating each round) of ${plan.n} sequential requests per variant (or ${plan.capMs / 1000} s), after ${plan.warmup} warm-up requests each; each request timed with \`process.hrtime.bigint()\` through the \`openai\` SDK. "Added" = the variant's percentile − the no-hooks percentile within a round, median across rounds.`,
      ],
      tables: [{ title: 'Latency per request, concurrency 1 (µs)', headers: ['variant', 'p50', 'p99', 'added p50 vs no hooks', 'added p99 vs no hooks'], rows }],
      notes: [`An installed no-op hook pair adds ${fmt(noopAdded)} µs at p50 (median of per-round differences); with no hooks installed the request path makes no hook call, no allocation and no await.`],
      data: Object.fromEntries(names.map((v) => [v, summary(rounds, v, 'no hooks')])),
    };
  } finally {
    await open.closeAll();
  }
};
