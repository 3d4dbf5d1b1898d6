/**
 * Streaming with cost events: streamed replies from two providers, each
 * priced from its real usage when the stream ends. keyplex asks upstream for
 * the usage chunk and removes it from what the application sees, since this
 * application did not ask for it.
 *
 * Runs offline against keyplex's simulator: npm run example examples/streaming-cost.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { KeyManager, PRICES_AS_OF } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const openaiKey = fake();
const deepseekKey = fake();

const simulator = new ProviderSimulator({
  providers: [
    { id: 'openai', keys: [openaiKey], models: ['gpt-4.1'], ttft: { medianMs: 40, p99Ms: 120 }, tokenIntervalMs: 2 },
    { id: 'deepseek', keys: [deepseekKey], models: ['deepseek-chat'], ttft: { medianMs: 80, p99Ms: 200 }, tokenIntervalMs: 2 },
  ],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    openai: { baseURL: server.baseURL('openai'), keys: [openaiKey], models: ['gpt-4.1'] },
    deepseek: { baseURL: server.baseURL('deepseek'), keys: [deepseekKey], models: { 'deepseek-v3.2': 'deepseek-chat' } },
  },
});

let spend = 0;
manager.on('success', (e) => {
  spend += e.costUsd ?? 0;
  console.log(
    `${e.model}: ${e.usage?.inputTokens} in / ${e.usage?.outputTokens} out, first token after ${e.ttftMs} ms, ` +
      `done in ${e.latencyMs} ms, $${e.costUsd?.toFixed(6)} (prices as of ${PRICES_AS_OF})`,
  );
});

const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
for (const model of ['gpt-4.1', 'deepseek-v3.2']) {
  const stream = await client.chat.completions.create({
    model,
    stream: true,
    messages: [{ role: 'user', content: 'Write a haiku about rate limits.' }],
  });
  let text = '';
  let usageChunks = 0;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usageChunks++;
  }
  console.log(`  ${text.split(' ').length} words streamed; usage chunks seen by the application: ${usageChunks}`);
}
console.log(`total spend: $${spend.toFixed(6)}`);
await manager.close();
await server.close();
