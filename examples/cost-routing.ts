/**
 * Cost routing: the application asks for an alias, `chat`, of three models;
 * the `cost` strategy sends each request to the cheapest deployment that has
 * rate-limit room (DeepSeek, then Gemini when DeepSeek's key is out of room,
 * GPT-4.1 last). A request for `gpt-4.1` while OpenAI is down falls back to
 * `claude-sonnet-4.5`. The `attempt` event says which deployment was chosen
 * and why; the `success` events give the spend per model.
 *
 * Runs offline against keyplex's simulator: npm run example examples/cost-routing.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Fake keys, made up on the spot: the simulator accepts whatever it is given.
const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const keys = { openai: fake(), anthropic: fake(), google: fake(), deepseek: fake() };

const simulator = new ProviderSimulator({
  seed: 7,
  providers: [
    // OpenAI is down: every request answers 503.
    { id: 'openai', keys: [keys.openai], models: ['gpt-4.1'], faults: [{ kind: 'outage' }] },
    { id: 'anthropic', keys: [keys.anthropic], models: ['claude-sonnet-4-5'] },
    { id: 'google', keys: [keys.google], models: ['gemini-2.5-flash'] },
    // DeepSeek's key allows 3 requests a minute; keyplex learns it from the x-ratelimit-* headers.
    { id: 'deepseek', keys: [{ key: keys.deepseek, rpm: 3 }], models: ['deepseek-chat'] },
  ],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    openai: { baseURL: server.baseURL('openai'), keys: [keys.openai], models: ['gpt-4.1'] },
    anthropic: { baseURL: server.baseURL('anthropic'), keys: [keys.anthropic], models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
    google: { baseURL: server.baseURL('google'), keys: [keys.google], models: ['gemini-2.5-flash'] },
    deepseek: { baseURL: server.baseURL('deepseek'), keys: [keys.deepseek], models: { 'deepseek-v3.2': 'deepseek-chat' } },
  },
  routing: {
    strategy: 'cost', // cheapest deployment first, by this request's token estimate × the deployment's price
    aliases: { chat: ['gpt-4.1', 'gemini-2.5-flash', 'deepseek-v3.2'] },
    fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'] },
  },
  retry: { baseDelayMs: 20 },
});

// Which deployment each attempt went to, and why.
const servedBy = new Map<string, string>();
manager.on('attempt', (e) => {
  servedBy.set(e.requestId, e.deploymentModel ?? '?');
  console.log(`  attempt ${e.attempt}: asked '${e.model}' -> ${e.deploymentModel} on ${e.provider} (strategy ${e.strategy}, rank ${e.rank})`);
});
manager.on('retry', (e) => console.log(`  ${e.provider} answered ${e.status ?? e.reason}; retrying in ${e.delayMs} ms`));

// Spend per model that served, from measured usage.
const spend = new Map<string, { requests: number; tokens: number; costUsd: number }>();
manager.on('success', (e) => {
  const model = servedBy.get(e.requestId) ?? e.model ?? '?';
  const entry = spend.get(model) ?? { requests: 0, tokens: 0, costUsd: 0 };
  entry.requests++;
  entry.tokens += e.usage?.totalTokens ?? 0;
  entry.costUsd += e.costUsd ?? 0;
  spend.set(model, entry);
});

const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
const ask = async (model: string, content: string) => {
  console.log(`${model}: ${content}`);
  const reply = await client.chat.completions.create({ model, max_tokens: 200, messages: [{ role: 'user', content }] });
  console.log(`  answered by ${reply.model}, ${reply.usage?.total_tokens} tokens`);
};

console.log("The alias 'chat', cheapest deployment with room first:");
for (let i = 1; i <= 5; i++) await ask('chat', `Summarise ticket #${i} in one line.`);
console.log('\nOpenAI is down; gpt-4.1 falls back to claude-sonnet-4.5:');
await ask('gpt-4.1', 'Draft a careful reply to an angry customer.');

console.log('\nspend per model (from the success events):');
for (const [model, s] of spend) {
  console.log(`  ${model.padEnd(18)} ${s.requests} request(s)  ${String(s.tokens).padStart(5)} tokens  $${s.costUsd.toFixed(6)}`);
}
console.log(`  total              $${manager.stats().totals.costUsd.toFixed(6)}`);

await manager.close();
await server.close();
