/**
 * The response cache in a RedisStore (`cache: { store: 'store' }`): two
 * replicas on one real redis-server share answers; the TTL is Redis's own
 * (`SET … PX`); tenants stay apart.
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager, keyplex } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { redisForSuite } from '../support/redis';
import { Redis } from 'ioredis';
import { chatReply, keyRing, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'capital of France?' }] };
const redis = redisForSuite('Redis-backed response cache');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function replica(prefix: string, ttlMs: number) {
  const store = new RedisStore({ url: redis.server.url, prefix });
  await store.ready();
  const manager = new KeyManager({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, store, cache: { ttlMs, store: 'store' } });
  cleanups.push(async () => {
    await manager.close();
    await store.close();
  });
  return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}

async function ask(client: OpenAI, options = {}) {
  const { data, response } = await client.chat.completions.create(BODY, options).withResponse();
  return { text: data.choices[0]!.message.content, cache: response.headers.get('x-keyplex-cache') };
}

/** Waits (real time, bounded) for `check` to hold: the cache write is not awaited by the request. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`not seen: ${what}`);
}

describe.skipIf(!redis.available)('response cache on Redis', () => {
  test('replicas share answers, stored with SET PX (the TTL); other tenants do not share', async () => {
    const calls = provider(ONE, (_call, i) => chatReply(MODEL, `answer ${i + 1}`));
    const prefix = `cache:${randomUUID()}:`;
    const [a, b] = [await replica(prefix, 60_000), await replica(prefix, 60_000)];
    const raw = new Redis(redis.server.url);
    cleanups.push(async () => void raw.disconnect());
    expect(await ask(a.client)).toEqual({ text: 'answer 1', cache: null });
    await waitFor(async () => (await raw.keys(`${prefix}rc:*`)).length === 1, 'the cached answer in Redis');
    const [key] = await raw.keys(`${prefix}rc:*`);
    const ttl = await raw.pttl(key!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await ask(b.client)).toEqual({ text: 'answer 1', cache: 'hit' });
    expect(b.manager.stats().cache).toMatchObject({ hits: 1, misses: 0 });
    expect((await ask(b.client, keyplex.options({ tags: ['other-tenant'] }))).cache).toBe(null);
    expect(calls).toHaveLength(2);
  });

  test('an entry Redis expired is a miss', async () => {
    const calls = provider(ONE, (_call, i) => chatReply(MODEL, `answer ${i + 1}`));
    const prefix = `cache:${randomUUID()}:`;
    const a = await replica(prefix, 60_000);
    const raw = new Redis(redis.server.url);
    cleanups.push(async () => void raw.disconnect());
    await ask(a.client);
    await waitFor(async () => (await raw.keys(`${prefix}rc:*`)).length === 1, 'the cached answer in Redis');
    const [key] = await raw.keys(`${prefix}rc:*`);
    // What PX does when the TTL runs out, without waiting for it.
    await raw.pexpire(key!, 1);
    await waitFor(async () => (await raw.exists(key!)) === 0, 'the entry expired');
    expect(await ask(a.client)).toEqual({ text: 'answer 2', cache: null });
    expect(calls).toHaveLength(2);
  });
});
