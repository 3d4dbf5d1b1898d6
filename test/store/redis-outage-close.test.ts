/**
 * Redis going away mid-burst, in the ways it does: a hung server (SIGSTOP:
 * connection open, no answers). Three managers on one redis-server, each on
 * its own RedisStore, bursts through the real SDK on the in-process
 * simulator; and a manager made while it hangs. Real time with Redis: bounds
 * are generous, assertions are counts.
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator, simulatorFetch } from '../../src/testing';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite, serverPid } from '../support/redis';
import { outcome } from '../support/store-replica';
import { record } from '../support/events';
import { eventually } from '../support/time';

const redis = redisForSuite('Redis hung (SIGSTOP) under bursts');
const MODEL = 'gpt-4.1';
const body = () => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 4 });

/** Resolves to 'settled' when `promise` settles within `ms`, else 'pending'. */
const within = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => 'settled' as const), new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms).unref())]);

describe.skipIf(!redis.available)('a hung Redis (SIGSTOP)', () => {
  test('close() of managers and their stores returns during the hang; every request of the burst settles', async () => {
    const keys = [fakeKey('hang-a'), fakeKey('hang-b')];
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: keys.map((key) => ({ key })), models: [MODEL] }] });
    const options: Omit<KeyManagerOptions, 'store'> = {
      providers: { sim: { baseURL: sim.baseURL('sim'), keys: keys.map((key, i) => ({ key, id: `k${i}` })), models: [MODEL], requests: { limit: 10_000, periodMs: 60_000 } } },
      fetch: simulatorFetch(sim),
      deadlineMs: 5_000,
    };
    const prefix = `hang-close:${randomUUID()}:`;
    const replicas: { store: RedisStore; manager: KeyManager; client: OpenAI }[] = [];
    for (let i = 0; i < 3; i++) {
      const store = new RedisStore({ url: redis.server.url, prefix, retryMs: 50, timeoutMs: 250 });
      await store.ready();
      const manager = new KeyManager({ ...options, store });
      replicas.push({ store, manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) });
    }
    const burst = (count: number) => Promise.all(Array.from({ length: count }, (_, i) => outcome(replicas[i % 3]!.client.chat.completions.create(body()))));
    expect(await burst(30)).toEqual(Array(30).fill('ok'));

    const pid = await serverPid(redis.server.url);
    process.kill(pid, 'SIGSTOP');
    try {
      const during = burst(150);
      const closed = Promise.all(replicas.map(async ({ manager, store }) => {
        await manager.close();
        await store.close();
      }));
      // Generous: the store's timeoutMs is 250 ms; a close waiting on a server that never answers never returns.
      expect(await within(closed, 10_000)).toBe('settled');
      const outcomes = await during;
      expect(outcomes).toHaveLength(150);
      expect(outcomes.every((o) => o === 'ok' || o === 'manager_closed')).toBe(true);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 60_000);

  for (const failMode of ['open', 'closed'] as const) {
    test(`a manager made while Redis hangs, failing ${failMode}: its first burst settles (${failMode === 'open' ? 'served on local state' : 'store_unavailable'}), one store:error, one store:recovered after SIGCONT`, async () => {
      const key = fakeKey(`hang-new-${failMode}`);
      const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
      const store = new RedisStore({ url: redis.server.url, prefix: `hang-new:${randomUUID()}:`, retryMs: 50, timeoutMs: 250, failMode });
      await store.ready();
      const pid = await serverPid(redis.server.url);
      process.kill(pid, 'SIGSTOP');
      let stopped = true;
      try {
        const manager = new KeyManager({
          providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key, id: 'k' }], models: [MODEL], requests: { limit: 10_000, periodMs: 60_000 } } },
          fetch: simulatorFetch(sim),
          deadlineMs: 5_000,
          store,
        });
        const errors = record(manager, 'store:error');
        const recovered = record(manager, 'store:recovered');
        const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
        const burst = (count: number) => Promise.all(Array.from({ length: count }, () => outcome(client.chat.completions.create(body()))));
        expect(await burst(100)).toEqual(Array(100).fill(failMode === 'open' ? 'ok' : 'store_unavailable'));
        expect(errors.map((e) => e.failMode)).toEqual([failMode]);
        process.kill(pid, 'SIGCONT');
        stopped = false;
        await eventually(() => recovered.length === 1, 'store:recovered');
        expect(await burst(100)).toEqual(Array(100).fill('ok'));
        expect({ errors: errors.length, recovered: recovered.length }).toEqual({ errors: 1, recovered: 1 });
        await manager.close();
        await store.close();
      } finally {
        if (stopped) process.kill(pid, 'SIGCONT');
      }
    }, 60_000);
  }
});
