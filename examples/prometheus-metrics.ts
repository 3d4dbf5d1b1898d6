/**
 * keyplex's metrics for Prometheus: a `/metrics` endpoint served from
 * node:http with prom-client, over a KeyManager whose traffic meets 5xx and
 * a rate limit (10 requests a minute per openai key) from the simulator, and
 * fails over to deepseek. It scrapes itself once, prints a few series, and
 * stops.
 *
 * Runs offline against keyplex's simulator: npm run example examples/prometheus-metrics.ts
 * (with KEYPLEX_EXAMPLE_WAIT_FOR_SCRAPE=1 it prints its URL and waits, up to
 * 10 s, for one scrape from outside before stopping).
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import OpenAI from 'openai';
import { Registry } from 'prom-client';
import { KeyManager, type KeyManagerOptions } from 'keyplex';
import { knownModels, registerKeyplexMetrics } from 'keyplex/prometheus';
import { ProviderSimulator } from 'keyplex/testing';

const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const openaiKeys = [fake(), fake()];
const deepseekKeys = [fake()];

const simulator = new ProviderSimulator({
  seed: 7,
  providers: [
    { id: 'openai', keys: openaiKeys, models: ['gpt-4.1'], latency: { medianMs: 5, p99Ms: 20 }, rpm: 10, faults: [{ kind: 'server_error', probability: 0.3 }] },
    { id: 'deepseek', keys: deepseekKeys, models: ['deepseek-chat'], latency: { medianMs: 5, p99Ms: 20 } },
  ],
});
const upstream = await simulator.listen();

const options: KeyManagerOptions = {
  providers: {
    openai: { baseURL: upstream.baseURL('openai'), keys: openaiKeys, models: ['gpt-4.1'] },
    deepseek: { baseURL: upstream.baseURL('deepseek'), keys: deepseekKeys, models: { 'gpt-4.1': 'deepseek-chat', 'deepseek-chat': 'deepseek-chat' } },
  },
  retry: { baseDelayMs: 5 },
};
const manager = new KeyManager(options);
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

// The metrics, in a registry of their own; model labels: the configured names, then at most 50 others, then `other`.
const registry = new Registry();
const metrics = registerKeyplexMetrics(manager, { registry, models: knownModels(options) });

let scraped: () => void = () => undefined;
const scrapedOnce = new Promise<void>((resolve) => (scraped = resolve));
const server = createServer((req, res) => {
  if (req.url !== '/metrics') {
    res.writeHead(404).end();
    return;
  }
  registry.metrics().then(
    (text) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      scraped();
    },
    (error: unknown) => res.writeHead(500).end(String(error)),
  );
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const address = server.address();
const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/metrics`;

for (let i = 0; i < 30; i++) {
  await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: `question ${i}` }] });
}
const stream = await client.chat.completions.create({ model: 'gpt-4.1', stream: true, messages: [{ role: 'user', content: 'a stream' }] });
for await (const _ of stream);

if (process.env.KEYPLEX_EXAMPLE_WAIT_FOR_SCRAPE === '1') {
  console.log(`metrics: ${url}`);
  await Promise.race([scrapedOnce, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
} else {
  const text = await (await fetch(url)).text();
  const wanted = /^keyplex_(requests_total|retries_total|failovers_total|cost_usd_total|keys)\{/;
  console.log(`scraped ${url}:`);
  for (const line of text.split('\n').filter((l) => wanted.test(l))) console.log(`  ${line}`);
}

metrics.close();
await manager.close();
await new Promise<void>((resolve) => server.close(() => resolve()));
await upstream.close();
