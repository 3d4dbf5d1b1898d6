/**
 * Redis up and answering, but refusing keyplex's commands: an ACL user not
 * allowed what the store needs (Redis 7 gives a new ACL user no channels),
 * or a key under the store's prefix that another program wrote with another
 * type (WRONGTYPE). Requests go on (failing open), the refusal is reported
 * as `store:error`, and spend is written to Redis once — never again at each
 * of the store's retries. Real `redis-server`, real SDK, simulator on msw.
 */
import { Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import OpenAI from 'openai';
import { getKeyplexDetails, KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { keyField } from '../../src/store/fields';
import { fakeKey } from '../support/fake-keys';
import { record } from '../support/events';
import { PATIENT_REDIS_MS, redisForSuite } from '../support/redis';
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';
import { outcome, pricedBody, pricedSetup, storeReplica } from '../support/store-replica';

const { server, cleanups } = mswSuite();
const redis = redisForSuite('Redis refusing commands');

/** A client of the test's own on the suite's Redis, closed after the test. */
function admin(): Redis {
  const client = new Redis(redis.server.url);
  cleanups.push(async () => void client.disconnect());
  return client;
}

/** An ACL user of its own (a fresh name and password), with `rules`; its URL. */
async function aclUser(redisAdmin: Redis, rules: string[]): Promise<{ name: string; url: string }> {
  const name = `kp-${fakeKey('user').slice(-12)}`;
  const password = fakeKey('pw');
  await redisAdmin.call('ACL', 'SETUSER', name, 'on', `>${password}`, '~*', ...rules);
  return { name, url: `redis://${name}:${password}@127.0.0.1:${redis.server.port}` };
}

/** How many transactions (`MULTI`) Redis was sent so far: the store's write-backs among them. */
async function execs(redisAdmin: Redis): Promise<number> {
  const stats = await redisAdmin.info('commandstats');
  return Number(/cmdstat_multi:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

/** What Redis holds of a budget's spend, in USD. */
async function heldUsd(redisAdmin: Redis, prefix: string, budgetId: string): Promise<number> {
  const hash = await redisAdmin.hgetall(`${prefix}spend:${encodeURIComponent(budgetId)}`);
  return Object.values(hash).reduce((sum, v) => sum + Number(v), 0) / 1e9;
}

/** A replica (its own store) on the user's URL, recording its store events. */
async function replica(url: string, prefix: string, options: Omit<KeyManagerOptions, 'store'>) {
  const made = await storeReplica(url, prefix, options, cleanups);
  return { ...made, errors: record(made.manager, 'store:error'), recovered: record(made.manager, 'store:recovered') };
}

describe.skipIf(!redis.available)('Redis up but refusing commands', () => {
  test('a user refused PUBLISH: each request\'s spend is written to Redis once, not again at every retry of the store (0.03 USD held, not more each 50 ms)', async () => {
    const redisAdmin = admin();
    const user = await aclUser(redisAdmin, ['allchannels', '+@all']);
    const { sim, prefix, options } = pricedSetup(server, 'refused-publish', 10);
    const a = await replica(user.url, prefix, options);
    const budgetId = a.manager.stats().budgets[0]!.id;

    await redisAdmin.call('ACL', 'SETUSER', user.name, '-publish');
    for (let i = 0; i < 3; i++) expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    const cost = sim.tallies().sim!.costUsd;
    expect(cost).toBeCloseTo(0.03, 9);
    await eventually(() => a.errors.length > 0, 'the refusal is reported');
    // The store retries every 50 ms (retryMs): let it try its write-back several times.
    const before = await execs(redisAdmin);
    for (let i = 0; i < 1_000 && (await execs(redisAdmin)) < before + 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await execs(redisAdmin)).toBeGreaterThanOrEqual(before + 5);
    // Before the fix the spend script's HINCRBY stood when its PUBLISH was refused, and every retry wrote it again.
    expect(await heldUsd(redisAdmin, prefix, budgetId)).toBeCloseTo(cost, 9);

    await redisAdmin.call('ACL', 'SETUSER', user.name, '+publish');
    await eventually(() => a.recovered.length > 0, 'the store is back');
    expect(await heldUsd(redisAdmin, prefix, budgetId)).toBeCloseTo(cost, 9);
    expect(a.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(cost, 9);
    expect(a.errors).toHaveLength(1);
    expect(a.errors[0]!.message).not.toContain(options.providers.sim.keys[0]!);
  }, 60_000);

  test('a key window another program overwrote with a string (WRONGTYPE): requests are served, and the spend kept meanwhile is written once when the write-back fails on the window', async () => {
    const redisAdmin = admin();
    const { sim, prefix, options } = pricedSetup(server, 'refused-wrongtype', 10);
    const limited = { ...options, providers: { sim: { ...options.providers.sim, keys: [{ key: options.providers.sim.keys[0]!, id: 'k' }], rpm: 1_000 } } };
    const a = await replica(redis.server.url, prefix, limited);
    const budgetId = a.manager.stats().budgets[0]!.id;
    expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    const windowKey = `${prefix}w:${keyField({ provider: 'sim', keyId: 'k' })}`;
    expect(await redisAdmin.exists(windowKey)).toBe(1);

    await redisAdmin.set(windowKey, 'not a hash');
    for (let i = 0; i < 3; i++) expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    expect(a.errors.map((e) => e.message)).toEqual([expect.stringContaining('WRONGTYPE')]);
    const cost = sim.tallies().sim!.costUsd;
    expect(cost).toBeCloseTo(0.04, 9);
    const before = await execs(redisAdmin);
    for (let i = 0; i < 1_000 && (await execs(redisAdmin)) < before + 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    // Before the fix the write-back transaction wrote the kept spend, failed on the window, and was sent again.
    expect(await heldUsd(redisAdmin, prefix, budgetId)).toBeCloseTo(cost, 9);

    await redisAdmin.del(windowKey);
    await eventually(() => a.recovered.length > 0, 'the store is back once the window is gone');
    expect(await heldUsd(redisAdmin, prefix, budgetId)).toBeCloseTo(cost, 9);
    expect(a.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(cost, 9);
  }, 60_000);

  test('the key statuses hash overwritten with a string (WRONGTYPE): one `store:error` while it lasts, not one (and a `store:recovered`) per retry; requests served; back once it is gone', async () => {
    const redisAdmin = admin();
    const { prefix, options } = pricedSetup(server, 'refused-statuses', 10);
    const limited = { ...options, providers: { sim: { ...options.providers.sim, rpm: 1_000 } } };
    const a = await replica(redis.server.url, prefix, limited);
    await redisAdmin.set(`${prefix}keys`, 'not a hash');
    for (let i = 0; i < 3; i++) expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    await eventually(() => a.errors.length > 0, 'the refusal is reported');
    const before = await execs(redisAdmin);
    for (let i = 0; i < 1_000 && (await execs(redisAdmin)) < before + 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    for (let i = 0; i < 3; i++) expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    // Before the fix the write-back (which writes no status) passed: back, failed again at the next reservation or load, each retry.
    expect(a.errors).toEqual([expect.objectContaining({ message: expect.stringContaining('WRONGTYPE') })]);
    expect(a.recovered).toEqual([]);

    await redisAdmin.del(`${prefix}keys`);
    await eventually(() => a.recovered.length > 0, 'the store is back once the hash is gone');
    expect(a.errors).toHaveLength(1);
  }, 60_000);

  test('a store whose user may not SUBSCRIBE (no channels, as Redis 7 makes a new ACL user) says so with `store:error` at start instead of never getting ready in silence, and serves meanwhile', async () => {
    const redisAdmin = admin();
    const user = await aclUser(redisAdmin, ['resetchannels', '+@all']);
    const { prefix, options } = pricedSetup(server, 'refused-channels', 10);
    // Not awaiting `store.ready()`: it resolves once the store is subscribed.
    const store = new RedisStore({ url: user.url, prefix, retryMs: 50, timeoutMs: PATIENT_REDIS_MS });
    const manager = new KeyManager({ ...options, store });
    cleanups.unshift(async () => {
      await manager.close();
      await store.close();
    });
    const a = { store, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })), errors: record(manager, 'store:error'), recovered: record(manager, 'store:recovered') };
    await eventually(() => a.errors.length > 0, 'the refusal is reported');
    expect(a.errors).toEqual([{ operation: 'subscribe', message: expect.stringContaining('NOPERM'), failMode: 'open' }]);
    expect(a.store.healthy).toBe(false);
    expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');

    await redisAdmin.call('ACL', 'SETUSER', user.name, 'allchannels');
    await eventually(() => a.recovered.length > 0, 'the store is ready once the user may subscribe');
    expect(a.store.healthy).toBe(true);
    expect(a.errors).toHaveLength(1);
  }, 60_000);

  test('a manager opened on a store that reported already (a second one, or one made after `ready()` gave up waiting) hears `store:error` too', async () => {
    const redisAdmin = admin();
    const user = await aclUser(redisAdmin, ['resetchannels', '+@all']);
    const { prefix, options } = pricedSetup(server, 'refused-late', 10);
    const store = new RedisStore({ url: user.url, prefix, retryMs: 50, timeoutMs: PATIENT_REDIS_MS });
    const first = new KeyManager({ ...options, store });
    const firstErrors = record(first, 'store:error');
    cleanups.unshift(async () => {
      await first.close();
      await store.close();
    });
    await eventually(() => firstErrors.length > 0, 'the first manager hears of the refusal');
    const second = new KeyManager({ ...options, store });
    cleanups.unshift(() => second.close());
    const secondErrors = record(second, 'store:error');
    // Before the fix: never (the store reports once per outage, to the sessions open then).
    await eventually(() => secondErrors.length > 0, 'the second manager hears of it too');
    expect(secondErrors).toEqual(firstErrors);
  }, 60_000);

  test('failing closed on a Redis out of memory (`noeviction`): every refused request says why (OOM), not "unreachable"; served again once memory is raised', async () => {
    const redisAdmin = admin();
    const { prefix, options } = pricedSetup(server, 'refused-closed', 10);
    const limited = { ...options, providers: { sim: { ...options.providers.sim, rpm: 1_000 } } };
    const made = await storeReplica(redis.server.url, prefix, limited, cleanups, PATIENT_REDIS_MS, undefined, 'closed');
    const errors = record(made.manager, 'store:error');
    const recovered = record(made.manager, 'store:recovered');
    expect(await outcome(made.client.chat.completions.create(pricedBody()))).toBe('ok');
    const policy = (await redisAdmin.config('GET', 'maxmemory-policy'))[1]!;
    cleanups.unshift(async () => void (await redisAdmin.config('SET', 'maxmemory', '0'), await redisAdmin.config('SET', 'maxmemory-policy', policy)));
    await redisAdmin.config('SET', 'maxmemory-policy', 'noeviction');
    await redisAdmin.config('SET', 'maxmemory', '1');

    const messages: string[] = [];
    for (let i = 0; i < 3; i++) {
      const error = await made.client.chat.completions.create(pricedBody()).then(() => undefined, (e: unknown) => e);
      expect(getKeyplexDetails(error)?.code).toBe('store_unavailable');
      messages.push((error as Error).message);
    }
    // Before the fix the first said OOM, the others "it is unreachable".
    for (const message of messages) expect(message).toContain('OOM command not allowed');
    expect(errors).toHaveLength(1);

    await redisAdmin.config('SET', 'maxmemory', '0');
    await eventually(() => recovered.length > 0, 'the store is back once memory is raised');
    expect(await outcome(made.client.chat.completions.create(pricedBody()))).toBe('ok');
  }, 60_000);
});
