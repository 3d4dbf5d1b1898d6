/**
 * The README's quick start, offline: two simulated providers on loopback, one
 * of their keys revoked, one provider failing a fifth of its requests. keyplex
 * retires the revoked key, fails over, and the application sees only replies.
 *
 * Runs offline: npm run example examples/quick-start.ts
 */
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Simulated providers on 127.0.0.1; the keys are made up, the simulator accepts whatever it is given.
const sim = new ProviderSimulator({
  seed: 1,
  providers: [
    { id: 'openai', keys: ['sim-key-a', { key: 'sim-key-b', revoked: true }], models: ['gpt-4.1'] },
    { id: 'gateway', keys: ['sim-key-c'], models: ['openai/gpt-4.1'], faults: [{ kind: 'server_error', probability: 0.2 }] },
  ],
});
const server = await sim.listen();

const manager = new KeyManager({
  providers: {
    openai: { baseURL: server.baseURL('openai'), keys: [{ key: 'sim-key-a', id: 'openai-1' }, { key: 'sim-key-b', id: 'openai-2' }], models: ['gpt-4.1'] },
    gateway: { baseURL: server.baseURL('gateway'), keys: [{ key: 'sim-key-c', id: 'gateway-1' }], models: { 'gpt-4.1': 'openai/gpt-4.1' } },
  },
  keySelection: 'round-robin',
});
manager.on('key:disabled', (e) => console.log(`  key ${e.provider}/${e.keyId} disabled: ${e.reason}`));
manager.on('success', (e) => console.log(`  ${e.provider}/${e.keyId}: ${e.usage?.totalTokens} tokens, $${e.costUsd?.toFixed(6)}, attempt ${e.attempts}`));

// Your code: the official SDK, unchanged.
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
for (let i = 1; i <= 4; i++) {
  const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: `Say hello #${i}` }] });
  console.log(`reply ${i}: ${reply.choices[0]?.message.content?.slice(0, 40)}…`);
}

await manager.close();
await server.close();
