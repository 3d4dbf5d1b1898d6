/**
 * Two managers on one shared state, per kind of store (apart from
 * redis.ts, which the benchmarks import under plain Node).
 */
import { randomUUID } from 'node:crypto';
import { MemoryStore, type StateStore } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { PATIENT_REDIS_MS, type SuiteRedis } from './redis';

/** A way to give two managers one shared state: one `MemoryStore` twice, or two `RedisStore`s on one prefix. */
export interface StorePairKind {
  name: string;
  available: boolean;
  stores: () => Promise<[StateStore, StateStore]>;
}

/**
 * The two kinds of shared state managers meet on, for suites that run once
 * per kind. Each Redis store is handed to `opened` (to close it after the
 * test); `now` is the stores' clock (default `Date.now`, read when called).
 */
export function storePairKinds(redis: SuiteRedis, opened: (store: RedisStore) => void, now?: () => number): StorePairKind[] {
  return [
    {
      name: 'one MemoryStore',
      available: true,
      stores: async () => {
        const store = new MemoryStore(now ? { now } : {});
        return [store, store];
      },
    },
    {
      name: 'RedisStores with one prefix',
      available: redis.available,
      stores: async () => {
        const prefix = `pair:${randomUUID()}:`;
        const make = async () => {
          const store = new RedisStore({ url: redis.server.url, prefix, timeoutMs: PATIENT_REDIS_MS, ...(now && { now }) });
          opened(store);
          await store.ready();
          return store;
        };
        return [await make(), await make()];
      },
    },
  ];
}
