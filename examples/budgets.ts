/**
 * Budgets: spend caps in USD per window. A daily cap on gpt-4.1 with
 * `onExceeded: 'cheaper'` moves its requests to a cheaper deployment (here
 * its fallback, deepseek-v3.2) from the first request that would take it past
 * the cap, and `budget:exceeded` fires when its spend reaches the cap; a daily
 * cap on everything with `onExceeded: 'reject'` (the default) then refuses
 * requests before anything is sent. The application sees the SDK's `RateLimitError`, with keyplex's
 * detail: code `budget_exceeded` and `retryAfterMs`, the time until the
 * day's window resets.
 *
 * Runs offline against keyplex's simulator: npm run example examples/budgets.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { getKeyplexDetails, KeyManager, REQUEST_ID_HEADER } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Fake keys, made up on the spot: the simulator accepts whatever it is given.
const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const openaiKey = fake();
const deepseekKey = fake();

const simulator = new ProviderSimulator({
  seed: 7,
  providers: [
    { id: 'openai', keys: [openaiKey], models: ['gpt-4.1'] },
    { id: 'deepseek', keys: [deepseekKey], models: ['deepseek-chat'] },
  ],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    openai: { baseURL: server.baseURL('openai'), keys: [openaiKey], models: ['gpt-4.1'] },
    deepseek: { baseURL: server.baseURL('deepseek'), keys: [deepseekKey], models: { 'deepseek-v3.2': 'deepseek-chat' } },
  },
  // What else may serve a gpt-4.1 request: what 'cheaper' can move it to.
  routing: { fallbacks: { 'gpt-4.1': ['deepseek-v3.2'] } },
  // Each reply carries its request's id (REQUEST_ID_HEADER), which ties it to its events below.
  replyHeaders: true,
  // A request is refused (or, for 'cheaper', rerouted) when what was spent, plus
  // what requests in flight hold, plus its own estimated cost (prompt and
  // max_tokens, priced) would pass the cap.
  budgets: [
    // Tiny caps so that the example reaches them in a few dozen requests.
    { id: 'gpt-4.1/day', scope: { model: 'gpt-4.1' }, limitUsd: 0.006, window: 'day', onExceeded: 'cheaper' },
    { id: 'everything/day', scope: { overall: true }, limitUsd: 0.0085, window: 'day', onExceeded: 'reject' },
  ],
});

// Each reply's cost, from measured usage.
const lastCost = new Map<string, number>();
manager.on('success', (e) => lastCost.set(e.requestId, e.costUsd ?? 0));

// One line per run of requests served by the same deployment, and one per event.
let run: { served: string; first: number; last: number; costUsd: number } | undefined;
let spentUsd = 0;
const flush = () => {
  if (run) console.log(`requests ${run.first}-${run.last}: ${run.served}, $${run.costUsd.toFixed(6)} (spent today: $${spentUsd.toFixed(6)})`);
  run = undefined;
};
manager.on('budget:exceeded', (e) => {
  flush();
  console.log(`  budget:exceeded '${e.budget}' (${e.onExceeded}): $${e.spentUsd.toFixed(6)} spent + $${e.heldUsd.toFixed(6)} held of $${e.limitUsd} per ${e.window}`);
});
const servedBy = new Map<string, string>();
manager.on('attempt', (e) => servedBy.set(e.requestId, `${e.deploymentModel} on ${e.provider}`));

const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
for (let i = 1; i <= 300; i++) {
  try {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4.1', max_tokens: 300, messages: [{ role: 'user', content: `Write release note #${i}.` }] })
      .withResponse();
    const requestId = response.headers.get(REQUEST_ID_HEADER) ?? '';
    const served = servedBy.get(requestId) ?? data.model;
    const costUsd = lastCost.get(requestId) ?? 0;
    if (run?.served !== served) {
      flush();
      run = { served, first: i, last: i, costUsd: 0 };
    }
    run.last = i;
    run.costUsd += costUsd;
    spentUsd += costUsd;
  } catch (err) {
    flush();
    const detail = getKeyplexDetails(err);
    if (err instanceof OpenAI.RateLimitError && detail?.code === 'budget_exceeded') {
      console.log(`request ${i} refused before sending: ${err.constructor.name} ${err.status}, getKeyplexDetails(err).code '${detail.code}'`);
      console.log(`  ${detail.message}`);
      console.log(`  retryAfterMs: ${detail.retryAfterMs} (${((detail.retryAfterMs ?? 0) / 3_600_000).toFixed(1)} h: the UTC day's window resets then)`);
      break;
    }
    throw err;
  }
}
flush();

const { totals } = manager.stats();
console.log(`${totals.successes} answered, ${totals.requests - totals.successes} refused; $${totals.costUsd.toFixed(6)} spent in all`);
await manager.close();
await server.close();
