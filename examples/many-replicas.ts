/**
 * Many replicas, one set of keys: each replica's KeyManager has a RedisStore
 * on the same Redis and prefix, so together they keep each key within its rate
 * limit, and a key one replica finds revoked is out of use in all of them.
 *
 * In production each replica is its own process or machine; here three
 * managers with their own Redis connections stand for them, so the example
 * runs in one command. It uses `$REDIS_URL` when set, else starts a
 * `redis-server` of its own on a free port (Debian: apt-get install redis-server).
 *
 * Runs offline against keyplex's simulator: npm run example examples/many-replicas.ts
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import OpenAI from 'openai';
import { KeyManager } from 'keyplex';
import { RedisStore } from 'keyplex/redis';
import { ProviderSimulator } from 'keyplex/testing';

// Redis: $REDIS_URL, or a throwaway redis-server on loopback.
let redisUrl = process.env.REDIS_URL;
let stopRedis = () => {};
if (!redisUrl) {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    console.log('This example needs Redis: set REDIS_URL, or install redis-server (apt-get install redis-server).');
    process.exit(0);
  }
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  stopRedis = () => child.kill();
  redisUrl = `redis://127.0.0.1:${port}`;
}

// Fake keys, made up on the spot. One of them the provider has revoked.
const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const [revoked, keyA, keyB] = [fake(), fake(), fake()];
const simulator = new ProviderSimulator({
  seed: 3,
  providers: [{ id: 'openai', keys: [{ key: revoked, revoked: true }, { key: keyA, rpm: 60 }, { key: keyB, rpm: 60 }], models: ['gpt-4.1-mini'] }],
});
const server = await simulator.listen();

// What every replica runs: the same providers and keys, a RedisStore on the same Redis and prefix.
async function startReplica(name: string) {
  const store = new RedisStore({ url: redisUrl, prefix: 'example:' });
  // Rejects with StoreUnavailableError (Redis's reason in its message) when Redis does not answer within 10 s.
  await store.ready();
  const manager = new KeyManager({
    providers: {
      openai: {
        baseURL: server.baseURL('openai'),
        keys: [
          { key: revoked, id: 'old-key' },
          { key: keyA, id: 'key-a' },
          { key: keyB, id: 'key-b' },
        ],
        // The keys' limit, per key: shared by all replicas through Redis.
        rpm: 60,
      },
    },
    // Keys in turn, starting with the first (the revoked one).
    keySelection: 'round-robin',
    store,
  });
  manager.on('key:disabled', (e) => console.log(`${name}: key ${e.keyId} disabled (${e.reason})${e.remote ? ', as another replica found' : ''}`));
  manager.on('store:error', (e) => console.log(`${name}: Redis unavailable (${e.message}); serving on local state`));
  manager.on('store:lost', (e) => console.log(`${name}: Redis lost the shared state (${e.cause}); wrote back what this replica knew`));
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  return { name, store, manager, client, served: 0 };
}
const replicas = [await startReplica('replica-1'), await startReplica('replica-2'), await startReplica('replica-3')];

// replica-1's first request meets the revoked key (a 401): it disables the key,
// fails over to another, and tells the other replicas through Redis.
await replicas[0]!.client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 16 });
await new Promise((resolve) => setTimeout(resolve, 50)); // pub/sub takes a millisecond or two

// 130 requests spread over the replicas. Two usable keys × 60 a minute: 119 go
// out at once (the keys' burst, less the one above), the rest wait for the keys to refill.
console.log('130 requests over the three replicas: 119 at once, the rest as the two keys refill (60 a minute each: about a minute)…');
const startedAt = Date.now();
await Promise.all(
  Array.from({ length: 130 }, async (_, i) => {
    const replica = replicas[i % replicas.length]!;
    await replica.client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: `Request ${i}` }], max_tokens: 16 });
    replica.served++;
  }),
);

const tally = simulator.tallies().openai!;
console.log(`\n1 + 130 requests in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${replicas.map((r) => `${r.name} ${r.served}`).join(', ')}`);
console.log(`provider: ${tally.successes} answered, ${tally.rateLimited} refused for rate limits; requests per key: ${[keyA, keyB].map((k) => tally.keys[k]!.successes).join(' and ')} (limit 60 a minute each, plus refill)`);
console.log(`the revoked key reached the provider ${tally.keys[revoked]!.requests} time(s) in all: once, before any replica knew`);

for (const replica of replicas) {
  await replica.manager.close();
  await replica.store.close();
}
await server.close();
stopRedis();
