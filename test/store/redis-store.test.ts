/**
 * The Redis store when Redis goes away (DESIGN.md §5): fail-open serves on
 * local state and reports `store:error`, fail-closed refuses, and a Redis
 * restarted mid-run is reconnected to and resynced with, after which the
 * shared limits hold again. Real `redis-server`, real SDK, simulator on msw.
 */
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex, type KeyManagerOptions } from '../../src/index';
import { Redis } from 'ioredis';
import { ConfigError } from '../../src/errors';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { freePort, PATIENT_REDIS_MS, redisForSuite } from '../support/redis';
import { record } from '../support/events';
import { eventually } from '../support/time';
import { useMsw } from '../support/scaffold';
import { outcome } from '../support/store-replica';

const MODEL = 'gpt-4.1-mini';
const server = useMsw();
const redis = redisForSuite('RedisStore outages');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  server.resetHandlers();
});

const body = () => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });

describe.skipIf(!redis.available)('RedisStore when Redis goes away', () => {
  test('Redis stopped mid-run and started again: no request fails (fail-open), the store reconnects and shared limits hold again', async () => {
    // `busy` carries the traffic through the outage; `fresh` (rpm 10) is first used after it, to show sharing is back.
    const [busy, fresh] = [fakeKey('busy'), fakeKey('fresh')];
    const sim = new ProviderSimulator({
      providers: [
        { id: 'busy', keys: [{ key: busy }], models: [MODEL] },
        { id: 'fresh', keys: [{ key: fresh }], models: ['fresh-model'] },
      ],
    });
    server.use(...simulatorHandlers(sim));
    const prefix = `restart:${randomUUID()}:`;
    const managers = await Promise.all(
      [0, 1].map(async () => {
        // The only outage here is the one the test makes.
        const store = new RedisStore({ url: redis.server.url, prefix, retryMs: 50, timeoutMs: PATIENT_REDIS_MS });
        await store.ready();
        const options: KeyManagerOptions = {
          providers: {
            busy: { baseURL: sim.baseURL('busy'), keys: [busy], models: [MODEL], rpm: 100_000 },
            fresh: { baseURL: sim.baseURL('fresh'), keys: [fresh], models: ['fresh-model'], rpm: 10 },
          },
          store,
        };
        const manager = new KeyManager(options);
        cleanups.push(async () => {
          await manager.close();
          await store.close();
        });
        return { manager, store, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })), errors: record(manager, 'store:error'), recovered: record(manager, 'store:recovered') };
      }),
    );
    const run = (count: number) => Promise.all(Array.from({ length: count }, (_, i) => outcome(managers[i % 2]!.client.chat.completions.create(body()))));

    expect(await run(20)).toEqual(Array(20).fill('ok'));
    await redis.server.stop();
    // Through the outage: every request served on local state.
    const during = [...(await run(20)), ...(await run(20))];
    expect(during).toEqual(Array(40).fill('ok'));
    for (const { errors } of managers) {
      await eventually(() => errors.length > 0, 'store:error');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ failMode: 'open' });
    }
    expect(managers.every(({ store }) => !store.healthy)).toBe(true);

    await redis.server.start();
    for (const { recovered } of managers) await eventually(() => recovered.length === 1, 'store:recovered');
    expect(managers.every(({ store }) => store.healthy)).toBe(true);
    expect(await run(10)).toEqual(Array(10).fill('ok'));

    // Shared again: `fresh` allows 10 a minute. Each manager alone would let 10 through (20 in all).
    // Its next refill is 6 s away, past a 3 s deadline: the other 10 fail at once instead of waiting.
    const fresh20 = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        outcome(managers[i % 2]!.client.chat.completions.create({ ...body(), model: 'fresh-model' }, keyplex.options({ deadlineMs: 3_000 }))),
      ),
    );
    expect(fresh20.filter((o) => o === 'ok')).toHaveLength(10);
    expect(fresh20.filter((o) => o === 'no_key_available')).toHaveLength(10);
    expect(sim.tallies().fresh!.successes).toBe(10);
  }, 20_000);

  test('Redis slower than timeoutMs: requests go on (fail-open), store:error says so, and the store recovers when Redis answers again', async () => {
    const key = fakeKey('slow');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    // 1 s: far above what Redis takes on a loaded machine, well below the pause.
    const store = new RedisStore({ url: redis.server.url, prefix: `slow:${randomUUID()}:`, timeoutMs: 1_000, retryMs: 50 });
    await store.ready();
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 6_000 } }, store });
    const admin = new Redis(redis.server.url);
    cleanups.push(async () => {
      await manager.close();
      await store.close();
      admin.disconnect();
    });
    const errors = record(manager, 'store:error');
    const recovered = record(manager, 'store:recovered');
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    expect(await outcome(client.chat.completions.create(body()))).toBe('ok');
    // Redis holds every other client's commands for 3 s: as slow as a Redis can be while up.
    await admin.call('CLIENT', 'PAUSE', '3000', 'ALL');
    const during = await Promise.all(Array.from({ length: 5 }, () => outcome(client.chat.completions.create(body()))));
    expect(during).toEqual(Array(5).fill('ok'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ operation: 'reserve', failMode: 'open' });
    expect(errors[0]!.message).toMatch(/did not answer a reservation within 1000 ms/);
    await eventually(() => recovered.length === 1, 'store:recovered');
    expect(store.healthy).toBe(true);
    expect(await outcome(client.chat.completions.create(body()))).toBe('ok');
  }, 20_000);

  test('a change made while Redis was away reaches the others once it is back', async () => {
    const key = fakeKey('kept');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `kept:${randomUUID()}:`;
    const make = async () => {
      const store = new RedisStore({ url: redis.server.url, prefix, retryMs: 50, timeoutMs: PATIENT_REDIS_MS });
      await store.ready();
      const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key, id: 'k' }], models: [MODEL] } }, store });
      cleanups.push(async () => {
        await manager.close();
        await store.close();
      });
      return { manager, store };
    };
    const a = await make();
    const b = await make();
    await redis.server.stop();
    await eventually(() => !a.store.healthy, 'A notices');
    a.manager.disableKey('sim', 'k');
    await redis.server.start();
    await eventually(() => b.manager.stats().providers.sim!.keys[0]!.status === 'disabled', 'disabled in B after the restart');
  }, 20_000);

  test('fail-closed: with Redis unreachable a request that needs a shared reservation is refused with store_unavailable (503)', async () => {
    const key = fakeKey('closed');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    // Nothing listens on this port.
    const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, failMode: 'closed', retryMs: 50 });
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 60 } }, store });
    cleanups.push(async () => {
      await manager.close();
      await store.close();
    });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const error = await client.chat.completions.create(body()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'store_unavailable' });
    expect(getKeyplexDetails(error)?.message).toMatch(/failMode 'closed'/);
    expect(sim.tallies().sim!.requests).toBe(0);
  });

  test('fail-open: with Redis unreachable from the start requests are served on local state', async () => {
    const key = fakeKey('open');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, retryMs: 50 });
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 60 } }, store });
    cleanups.push(async () => {
      await manager.close();
      await store.close();
    });
    const errors = record(manager, 'store:error');
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    expect(await outcome(client.chat.completions.create(body()))).toBe('ok');
    expect(await outcome(client.chat.completions.create(body()))).toBe('ok');
    // Reported once (when the connection is refused), though it never connected.
    await eventually(() => errors.length > 0, 'store:error');
    await new Promise((resolve) => setTimeout(resolve, 200)); // ioredis keeps retrying meanwhile
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ failMode: 'open' });
    expect(errors[0]!.message).toMatch(/ECONNREFUSED|closed|connect/i);
  });

  test('a store that connects after the manager started reloads the shared state, without a store:recovered', async () => {
    const key = fakeKey('late-connect');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `late:${randomUUID()}:`;
    const first = new RedisStore({ url: redis.server.url, prefix, timeoutMs: PATIENT_REDIS_MS });
    await first.ready();
    const options = (store: RedisStore): KeyManagerOptions => ({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key, id: 'k' }], models: [MODEL] } }, store });
    const a = new KeyManager(options(first));
    a.disableKey('sim', 'k');
    const second = new RedisStore({ url: redis.server.url, prefix, timeoutMs: PATIENT_REDIS_MS }); // not connected yet
    const b = new KeyManager(options(second));
    cleanups.push(async () => {
      await a.close();
      await b.close();
      await first.close();
      await second.close();
    });
    const recovered = record(b, 'store:recovered');
    await eventually(() => b.stats().providers.sim!.keys[0]!.status === 'disabled', 'disabled in B once connected');
    expect(recovered).toEqual([]);
  });
});

describe.skipIf(!redis.available)('RedisStore and secrets', () => {
  test('nothing written to Redis or published on its channel holds a key: keys are named by provider and id', async () => {
    const keys = [fakeKey('redis-secret-a'), fakeKey('redis-secret-b'), fakeKey('redis-secret-c')];
    const sim = new ProviderSimulator({
      providers: [{ id: 'sim', keys: [{ key: keys[0]!, revoked: true }, { key: keys[1]!, rpm: 1 }, { key: keys[2]! }], models: [MODEL] }],
    });
    server.use(...simulatorHandlers(sim));
    const prefix = `secrets:${randomUUID()}:`;
    const spy = new Redis(redis.server.url);
    const published: string[] = [];
    await spy.psubscribe(`${prefix}*`);
    spy.on('pmessage', (_pattern: string, _channel: string, message: string) => void published.push(message));
    const store = new RedisStore({ url: redis.server.url, prefix, timeoutMs: PATIENT_REDIS_MS });
    await store.ready();
    // Default key ids (fingerprints), budgets, circuits, a revoked key and a rate-limited one.
    const manager = new KeyManager({
      providers: { sim: { baseURL: sim.baseURL('sim'), keys, models: [MODEL], rpm: 100 } },
      keySelection: 'round-robin',
      budgets: [{ scope: { overall: true }, limitUsd: 5, window: 'day' }],
      store,
    });
    cleanups.push(async () => {
      await manager.close();
      await store.close();
      spy.disconnect();
    });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    for (let i = 0; i < 6; i++) await outcome(client.chat.completions.create(body()));
    manager.disableKey('sim', manager.stats().providers.sim!.keys[2]!.id);
    await eventually(() => published.length >= 2, 'changes published');

    const reader = new Redis(redis.server.url);
    cleanups.push(async () => reader.disconnect());
    const stored: string[] = [];
    for (const name of await reader.keys(`${prefix}*`)) {
      const type = await reader.type(name);
      const value = type === 'hash' ? JSON.stringify(await reader.hgetall(name)) : type === 'string' ? await reader.get(name) : type;
      stored.push(`${name} ${value}`);
    }
    expect(stored.length).toBeGreaterThan(3); // windows, statuses, spend
    const everything = [...stored, ...published].join('\n');
    for (const key of keys) {
      expect(everything).not.toContain(key);
      expect(everything).not.toContain(key.slice(key.lastIndexOf('-') + 1));
    }
  });
});

describe.skipIf(!redis.available)('RedisStore on a client of yours', () => {
  test('it uses the client, adds its own subscription, and leaves the client open on close()', async () => {
    const key = fakeKey('own-client');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const client = new Redis(redis.server.url, { enableOfflineQueue: false });
    cleanups.push(async () => client.disconnect());
    const prefix = `own:${randomUUID()}:`;
    const store = new RedisStore({ client, prefix, timeoutMs: PATIENT_REDIS_MS });
    await store.ready();
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 60 } }, store });
    const openAI = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    expect(await outcome(openAI.chat.completions.create(body()))).toBe('ok');
    // The reservation went through the given client: its window is in Redis.
    expect(await client.keys(`${prefix}w:*`)).toHaveLength(1);
    await manager.close();
    await store.close();
    expect(await client.ping()).toBe('PONG');
  });
});

describe('RedisStore options', () => {
  test.each([
    [{ failMode: 'sometimes' }, /failMode/],
    [{ prefix: '' }, /prefix/],
    [{ timeoutMs: 0 }, /timeoutMs/],
    [{ retryMs: -1 }, /retryMs/],
    [{ now: 5 }, /now/],
  ])('%o is refused with a message naming the option', (options, message) => {
    expect(() => new RedisStore({ ...(options as object), client: undefined, url: 'redis://127.0.0.1:1', redis: { lazyConnect: true } })).toThrow(message);
  });

  test.each([
    [{ failMode: 'sometimes' }, 'failMode'],
    [{ prefix: '' }, 'prefix'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ now: 5 }, 'now'],
    [{ url: 5 }, 'url'],
  ])('%o throws a ConfigError (invalid_config) whose field is the option', (options, field) => {
    const error = thrown(() => new RedisStore({ ...(options as object), redis: { lazyConnect: true } }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: 'invalid_config', field });
  });

  test.each([['redis://:s3cr3t-pw-0042@[bad'], ['not a url'], ['redis://:s3cr3t-pw-0042@127.0.0.1:99999']])(
    'a url that is not a URL (%j) is refused naming `url` and what to write, its password nowhere in the error',
    (url) => {
      const error = thrown(() => new RedisStore({ url, redis: { lazyConnect: true } }));
      expect(error).toMatchObject({ code: 'invalid_config', field: 'url' });
      expect((error as Error).message).toMatch(/redis:\/\/127\.0\.0\.1:6379/);
      expect(inspect(error, { depth: 5, showHidden: true })).not.toMatch(/s3cr3t/);
    },
  );

  test('ioredis connection options given at the top (host, port, password) are refused, saying they go in `url` or `redis`, not ignored', () => {
    const error = thrown(() => new RedisStore({ host: 'redis.internal', port: 6380, password: 's3cr3t-pw-0042' } as never));
    expect(error).toMatchObject({ code: 'invalid_config', field: 'host' });
    expect((error as Error).message).toMatch(/`url`.*`redis`/);
    expect(inspect(error, { depth: 5, showHidden: true })).not.toMatch(/s3cr3t|redis\.internal/);
  });

  test('another unknown option is refused naming the likely one', () => {
    expect(() => new RedisStore({ failmode: 'closed', redis: { lazyConnect: true } } as never)).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'failmode', message: expect.stringMatching(/did you mean `failMode`/) }),
    );
  });

  test('a url of another protocol (https:) is refused, naming the protocol', () => {
    const error = thrown(() => new RedisStore({ url: 'https://127.0.0.1:6379', redis: { lazyConnect: true } }));
    expect(error).toMatchObject({ code: 'invalid_config', field: 'url' });
    expect((error as Error).message).toMatch(/"https:"/);
  });

  test('a store is not a valid `store` option unless it has open()', () => {
    expect(() => new KeyManager({ providers: { p: { baseURL: 'https://p.example/v1', keys: [fakeKey('p')] } }, store: {} as never })).toThrow(/store/);
  });
});

/** What `run` threw. */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to throw');
}
