/**
 * Multi-provider fail-over: two providers serve claude-sonnet-4.5 (Anthropic
 * directly, and a gateway under its own name for it). Anthropic is down for
 * the first requests; keyplex retries on another key, then fails over to
 * the gateway, and the application only sees answers.
 *
 * Runs offline against keyplex's simulator: npm run example examples/multi-provider-failover.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const anthropicKeys = [fake(), fake()];
const gatewayKeys = [fake()];

const simulator = new ProviderSimulator({
  providers: [
    // An outage: every request in the first 5 is answered 503.
    { id: 'anthropic', keys: anthropicKeys, models: ['claude-sonnet-4-5'], faults: [{ kind: 'outage', requests: [0, 1, 2, 3, 4] }] },
    { id: 'gateway', keys: gatewayKeys, models: ['anthropic/claude-sonnet-4.5'] },
  ],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    // Tried first: it lists the model, under Anthropic's own name for it.
    anthropic: { baseURL: server.baseURL('anthropic'), keys: anthropicKeys, models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
    gateway: { baseURL: server.baseURL('gateway'), keys: gatewayKeys, models: { 'claude-sonnet-4.5': 'anthropic/claude-sonnet-4.5' } },
  },
  retry: { baseDelayMs: 50 },
  // Adds x-keyplex-provider (and the key id, attempts and request id) to each reply, read below.
  replyHeaders: true,
});
manager.on('retry', (e) => console.log(`  retry after ${e.provider}/${e.keyId}: ${e.reason} (${e.status ?? 'no status'}), waiting ${e.delayMs} ms`));
manager.on('failover', (e) => console.log(`  fail-over ${e.from.provider} -> ${e.to.provider}`));

const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
for (let i = 0; i < 4; i++) {
  const { data, response } = await client.chat.completions
    .create({ model: 'claude-sonnet-4.5', messages: [{ role: 'user', content: 'Are you there?' }] })
    .withResponse();
  console.log(`request ${i}: answered by ${response.headers.get('x-keyplex-provider')} (${data.model})`);
}

const { totals } = manager.stats();
console.log(`\n${totals.successes}/${totals.requests} answered, ${totals.retries} retries, ${totals.failovers} fail-overs`);
await manager.close();
await server.close();
