/**
 * The Vercel AI SDK over keyplex: `generateText` and `streamText` through
 * `@ai-sdk/openai` (Responses API and chat completions) and
 * `@ai-sdk/openai-compatible`, all on one manager. The AI SDK's providers get
 * `manager.fetch`, a placeholder key and base URL, and `maxRetries: 0` on each
 * call (keyplex retries, switching keys). One key was used up by another
 * service sharing it: its 429 moves the call to another key, and the
 * application never sees it.
 *
 * Runs offline against keyplex's simulator: npm run example examples/ai-sdk.ts
 */
import { randomBytes } from 'node:crypto';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText } from 'ai';
import { KEYPLEX_BASE_URL, KeyManager, keyplex } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Fake keys, made up on the spot: the simulator accepts whatever it is given.
const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const [shared, teamB, teamC, deepseekKey] = [fake(), fake(), fake(), fake()] as [string, string, string, string];

const simulator = new ProviderSimulator({
  providers: [
    // `shared` allows one request a minute, and another service is about to use it.
    { id: 'openai', keys: [{ key: shared, rpm: 1 }, teamB, teamC], models: ['gpt-4.1'], ttft: { medianMs: 20, p99Ms: 60 }, tokenIntervalMs: 2 },
    { id: 'deepseek', keys: [deepseekKey], models: ['deepseek-chat'] },
  ],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    openai: {
      baseURL: server.baseURL('openai'),
      keys: [
        { key: shared, id: 'shared' },
        { key: teamB, id: 'team-b' },
        { key: teamC, id: 'team-c' },
      ],
      models: ['gpt-4.1'],
    },
    deepseek: { baseURL: server.baseURL('deepseek'), keys: [{ key: deepseekKey, id: 'deepseek' }], models: ['deepseek-chat'] },
  },
});
manager.on('retry', (e) => console.log(`  keyplex: attempt ${e.attempt} on ${e.keyId} got ${e.status} (${e.reason}); trying another key`));
manager.on('success', (e) =>
  console.log(
    `  keyplex: ${e.model} on ${e.keyId}, ${e.usage?.inputTokens} in / ${e.usage?.outputTokens} out, ` +
      `$${e.costUsd?.toFixed(6)}, ${e.attempts} attempt(s)${e.tags.length > 0 ? `, tags ${e.tags.join(',')}` : ''}`,
  ),
);

// The AI SDK's providers: keyplex's fetch, placeholders for the key and the base URL.
const openai = createOpenAI({ fetch: manager.fetch, apiKey: 'managed-by-keyplex', baseURL: KEYPLEX_BASE_URL });
const compatible = createOpenAICompatible({
  name: 'keyplex',
  fetch: manager.fetch,
  apiKey: 'managed-by-keyplex',
  baseURL: KEYPLEX_BASE_URL,
  includeUsage: true, // streams report usage to the app too (keyplex accounts it either way)
});

// Another service sharing the `shared` key uses up its minute, behind keyplex's back.
await fetch(`${server.baseURL('openai')}/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${shared}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }),
}).then((r) => r.arrayBuffer());

const prompt = 'Write a haiku about rate limits.';
for (const [label, model] of [
  ['openai (Responses API)', openai('gpt-4.1')],
  ['openai.chat', openai.chat('gpt-4.1')],
  ['openai-compatible', compatible('deepseek-chat')],
] as const) {
  console.log(`generateText, ${label}:`);
  const { text, usage } = await generateText({ model, prompt, maxRetries: 0, ...keyplex.options({ tags: ['haiku'] }) });
  console.log(`  app: ${text.split(' ').length} words, ${usage.inputTokens} in / ${usage.outputTokens} out`);

  console.log(`streamText, ${label}:`);
  const result = streamText({ model, prompt, maxRetries: 0 });
  let pieces = 0;
  for await (const piece of result.textStream) if (piece.length > 0) pieces++;
  const streamed = await result.usage;
  console.log(`  app: ${pieces} pieces streamed, ${streamed.inputTokens} in / ${streamed.outputTokens} out`);
}

console.log('keyplex stats, per key:');
for (const key of manager.stats().providers.openai!.keys) {
  console.log(`  ${key.id.padEnd(7)} ${key.status.padEnd(8)} attempts ${key.requests}, ok ${key.successes}, 429s ${key.failures.rate_limit ?? 0}, $${key.costUsd.toFixed(6)}`);
}
await manager.close();
await server.close();
