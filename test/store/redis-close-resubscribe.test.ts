/**
 * Stores closed while their subscriber connections come back after a Redis
 * restart. ioredis re-sends SUBSCRIBE on its own when a subscriber reconnects
 * (`autoResubscribe`) and leaves that command's promise without a handler: a
 * store closed before Redis answered it rejected ("Connection is closed.")
 * with nobody to hear it — an unhandled rejection, which ends a Node.js
 * process by default. Real `redis-server`, killed and started again.
 */
import { describe, expect, test } from 'vitest';
import { RedisStore } from '../../src/store/redis';
import { redisForSuite } from '../support/redis';

const redis = redisForSuite('closing stores while they re-subscribe');
const STORES = 40;

describe.skipIf(!redis.available)('stores closed while their subscribers reconnect', () => {
  test(`${STORES} stores closed 0-${3 * (STORES - 1)} ms after Redis restarted leave no unhandled rejection`, async () => {
    const unhandled: unknown[] = [];
    const hear = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', hear);
    try {
      const stores = Array.from({ length: STORES }, (_, i) => new RedisStore({ url: redis.server.url, prefix: `resub:${i}:`, retryMs: 20, timeoutMs: 250 }));
      await Promise.all(stores.map((store) => store.ready()));
      await redis.server.stop();
      await redis.server.start();
      // Spread over the reconnection (real time: it is another process's): some close before it, some during, some after.
      await Promise.all(stores.map((store, i) => new Promise((resolve) => setTimeout(resolve, 3 * i)).then(() => store.close())));
      // Rejections are reported once the microtasks that could handle them have run: a few turns of the loop.
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      // Before: 11 to 34 'Connection is closed.' in 3 of 4 runs.
      expect(unhandled.map(String)).toEqual([]);
    } finally {
      process.off('unhandledRejection', hear);
    }
  }, 30_000);
});
