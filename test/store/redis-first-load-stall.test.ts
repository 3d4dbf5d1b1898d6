/**
 * A manager on a shared store holds its first requests until the store's
 * first load (at most 1 s), so that a key another replica disabled is never
 * sent. When the process's event loop was blocked past that second (start-up
 * is when it blocks the longest: modules loading, caches built, code
 * compiled) while Redis's answer had come, the wait's timer ran before the
 * answer was read, and the requests went on without it. The loop is blocked
 * with a synchronous busy wait, so what is asserted does not depend on the
 * machine's speed.
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { KeyManager } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { closeAfterEach } from '../support/scaffold';
import { PATIENT_REDIS_MS, redisForSuite } from '../support/redis';
import '../support/setup';
import { chatReply, keyRing, provider } from '../support/upstream';

const BASE = 'https://api.first-load-stall.test/v1';
const redis = redisForSuite('the first load under a blocked event loop');
const managers = closeAfterEach();

/** Blocks this process's event loop for `ms` (what a CPU-bound start-up does). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe.skipIf(!redis.available)('the first load under a blocked event loop', () => {
  test('a load answered while the loop was blocked past its 1 s wait is read before the first request goes: the key another replica disabled is not sent', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const prefix = `first-load-stall:${randomUUID()}:`;
    const stores: RedisStore[] = [];
    const start = async () => {
      const store = new RedisStore({ url: redis.server.url, prefix, timeoutMs: PATIENT_REDIS_MS });
      stores.push(store);
      await store.ready();
      const manager = new KeyManager({ providers: { s: { baseURL: BASE, keys: ring.keys } }, store, rateLimiting: { coldStart: 'open' } });
      managers.push(manager);
      return manager;
    };
    try {
      const first = await start();
      first.disableKey('s', 'a');
      // Written to Redis: a manager started now loads it.
      await new Promise((resolve) => setTimeout(resolve, 200));

      const second = await start();
      const reply = second.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })).chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
      busy(1_500);
      await reply;

      // Before: ['a'] (the wait's timer ran first: the request went on local state).
      expect(ring.ids(seen)).toEqual(['b']);
    } finally {
      for (const manager of managers.splice(0)) await manager.close();
      for (const store of stores) await store.close();
    }
  }, 30_000);
});
