/**
 * LangChain.js over keyplex: `@langchain/openai`'s `ChatOpenAI` with
 * `manager.fetch` as its client's fetch, a placeholder key and base URL, and
 * `maxRetries: 0` (keyplex retries, switching keys). `invoke` and `stream`,
 * on chat completions and on the Responses API; keyplex options for every call
 * of a model (default headers) and for one call (`options`). One key was used
 * up by another service sharing it: its 429 moves the call to another key.
 *
 * Runs offline against keyplex's simulator: npm run example examples/langchain.ts
 */
import { randomBytes } from 'node:crypto';
import { ChatOpenAI } from '@langchain/openai';
import type { AIMessageChunk } from '@langchain/core/messages';
import { KEYPLEX_BASE_URL, KeyManager, keyplex } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Fake keys, made up on the spot: the simulator accepts whatever it is given.
const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const [shared, teamB, teamC] = [fake(), fake(), fake()] as [string, string, string];

const simulator = new ProviderSimulator({
  // `shared` allows one request a minute, and another service is about to use it.
  providers: [{ id: 'openai', keys: [{ key: shared, rpm: 1 }, teamB, teamC], models: ['gpt-4.1'], ttft: { medianMs: 20, p99Ms: 60 }, tokenIntervalMs: 2 }],
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
    },
  },
});
manager.on('retry', (e) => console.log(`  keyplex: attempt ${e.attempt} on ${e.keyId} got ${e.status} (${e.reason}); trying another key`));
manager.on('success', (e) =>
  console.log(
    `  keyplex: ${e.model} on ${e.keyId}, ${e.usage?.inputTokens} in / ${e.usage?.outputTokens} out, ` +
      `$${e.costUsd?.toFixed(6)}, ${e.attempts} attempt(s)${e.tags.length > 0 ? `, tags ${e.tags.join(',')}` : ''}`,
  ),
);

/** A chat model whose every call goes through keyplex; `headers` carry keyplex options for all its calls. */
function chatModel(useResponsesApi: boolean, headers?: Record<string, string>): ChatOpenAI {
  return new ChatOpenAI({
    model: 'gpt-4.1',
    apiKey: 'managed-by-keyplex',
    maxRetries: 0,
    useResponsesApi,
    configuration: { fetch: manager.fetch, baseURL: KEYPLEX_BASE_URL, defaultHeaders: headers },
  });
}

// Another service sharing the `shared` key uses up its minute, behind keyplex's back.
await fetch(`${server.baseURL('openai')}/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${shared}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }),
}).then((r) => r.arrayBuffer());

const prompt = 'Write a haiku about rate limits.';
for (const useResponsesApi of [false, true]) {
  const label = useResponsesApi ? 'Responses API' : 'chat completions';
  const model = chatModel(useResponsesApi);

  console.log(`invoke, ${label}:`);
  const reply = await model.invoke(prompt, { options: keyplex.options({ tags: ['haiku'] }) });
  console.log(`  app: ${reply.usage_metadata?.input_tokens} in / ${reply.usage_metadata?.output_tokens} out`);

  console.log(`stream, ${label} (tagged for every call of this model):`);
  let whole: AIMessageChunk | undefined;
  let chunks = 0;
  for await (const chunk of await chatModel(useResponsesApi, keyplex.options({ tags: ['streamed'] }).headers).stream(prompt)) {
    whole = whole === undefined ? chunk : whole.concat(chunk);
    chunks++;
  }
  console.log(`  app: ${chunks} chunks, ${whole?.usage_metadata?.input_tokens} in / ${whole?.usage_metadata?.output_tokens} out`);
}

console.log('keyplex stats, per key:');
for (const key of manager.stats().providers.openai!.keys) {
  console.log(`  ${key.id.padEnd(7)} ${key.status.padEnd(8)} attempts ${key.requests}, ok ${key.successes}, 429s ${key.failures.rate_limit ?? 0}, $${key.costUsd.toFixed(6)}`);
}
await manager.close();
await server.close();
