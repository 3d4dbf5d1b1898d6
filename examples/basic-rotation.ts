/**
 * Basic rotation: one provider, three keys, one of them revoked. keyplex
 * spreads requests over the keys, retires the revoked one at its first 401,
 * and the application never sees the failure.
 *
 * Runs offline against keyplex's simulator: npm run example examples/basic-rotation.ts
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';

// Fake keys, made up on the spot: the simulator accepts whatever it is given.
const [good1, good2, revoked] = [1, 2, 3].map(() => `sim-${randomBytes(8).toString('hex')}`) as [string, string, string];

const simulator = new ProviderSimulator({
  providers: [{ id: 'openai', keys: [good1, good2, { key: revoked, revoked: true }], models: ['gpt-4.1'] }],
});
const server = await simulator.listen();

const manager = new KeyManager({
  providers: {
    openai: {
      baseURL: server.baseURL('openai'),
      keys: [
        { key: good1, id: 'team-a' },
        { key: good2, id: 'team-b' },
        { key: revoked, id: 'old-key' },
      ],
    },
  },
  keySelection: 'round-robin',
});
manager.on('key:disabled', (e) => console.log(`key ${e.keyId} disabled (${e.reason})`));
manager.on('success', (e) => console.log(`${e.requestId}: ${e.keyId} answered in ${e.latencyMs} ms after ${e.attempts} attempt(s)`));

const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
for (let i = 0; i < 6; i++) {
  await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: `Hello #${i}` }] });
}

for (const key of manager.stats().providers.openai!.keys) {
  console.log(`${key.id.padEnd(8)} ${key.status.padEnd(9)} attempts ${key.requests}, ok ${key.successes}`);
}
await manager.close();
await server.close();
