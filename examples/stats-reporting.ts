/**
 * Stats for interval reporting: per model, per deployment and per provider,
 * with latency and time-to-first-token percentiles, taken and reset each
 * interval with stats({ reset: true }).
 *
 * Runs offline against keyplex's simulator: npm run example examples/stats-reporting.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const openaiKeys = [fake(), fake()];
const googleKeys = [fake()];

const simulator = new ProviderSimulator({
  seed: 3,
  providers: [
    { id: 'openai', keys: openaiKeys, models: ['gpt-4.1'], latency: { medianMs: 30, p99Ms: 120 }, faults: [{ kind: 'server_error', probability: 0.1 }] },
    { id: 'google', keys: googleKeys, models: ['gemini-2.5-flash'], latency: { medianMs: 15, p99Ms: 60 }, ttft: { medianMs: 10, p99Ms: 40 } },
  ],
});
const server = await simulator.listen();
const manager = new KeyManager({
  providers: {
    openai: { baseURL: server.baseURL('openai'), keys: openaiKeys, models: ['gpt-4.1'] },
    google: { baseURL: server.baseURL('google'), keys: googleKeys, models: ['gemini-2.5-flash'] },
  },
  retry: { baseDelayMs: 10 },
});
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

for (let interval = 1; interval <= 2; interval++) {
  for (let i = 0; i < 20; i++) {
    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: `question ${i}` }] });
    const stream = await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `question ${i}` }] });
    for await (const _ of stream);
  }
  // One interval's report; the counters start again from zero.
  const stats = manager.stats({ reset: true });
  console.log(`interval ${interval}: ${stats.totals.requests} requests, ${stats.totals.retries} retries, $${stats.totals.costUsd.toFixed(5)}`);
  for (const [model, m] of Object.entries(stats.models)) {
    const ttft = m.ttftMs.count > 0 ? `, ttft p50 ${m.ttftMs.p50} ms` : '';
    console.log(`  ${model.padEnd(17)} ${m.successes}/${m.requests} ok, latency p50 ${m.latencyMs.p50} ms p95 ${m.latencyMs.p95} ms p99 ${m.latencyMs.p99} ms${ttft}`);
  }
  for (const d of stats.deployments) {
    console.log(`  ${d.provider}/${d.upstreamModel}: ${d.requests} attempts, failures ${JSON.stringify(d.failures)}, circuit ${d.circuit ?? 'n/a'}`);
  }
}
await manager.close();
await server.close();
