/**
 * Redis loses its data while the replicas stay connected (`FLUSHALL`, a
 * failover to an empty replica, an eviction): no connection drops, so no
 * outage is reported. The replicas must notice all the same (the store's
 * epoch marker is gone) and write back what they know, as after a restart:
 * budget spend, disabled keys. And a Redis killed (SIGKILL) with a spend
 * write on its way: ioredis sends it again to the restarted, empty server,
 * where it must not be taken for spend from before the crash. Real
 * `redis-server`, real SDK, simulator on msw.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { record } from '../support/events';
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';
import { outcome, pricedBody, pricedSetup, storeReplica } from '../support/store-replica';

const CAP_USD = 0.1;
const { server, cleanups } = mswSuite();
const redis = redisForSuite('Redis losing its data under connected replicas');

/** A manager on its own RedisStore (as in its own process), with its store events recorded. */
async function replica(prefix: string, options: Omit<KeyManagerOptions, 'store'>) {
  const made = await storeReplica(redis.server.url, prefix, options, cleanups);
  return { ...made, errors: record(made.manager, 'store:error') };
}

/** A client of the test's own on the suite's Redis, closed after the test. */
function admin(): Redis {
  const client = new Redis(redis.server.url);
  // The kill test stops the server under it: its reconnect errors are expected.
  client.on('error', () => undefined);
  cleanups.push(async () => void client.disconnect());
  return client;
}

const spent = (r: { manager: KeyManager }) => r.manager.stats().budgets[0]!.spentUsd;

describe.skipIf(!redis.available)('Redis loses its data while the replicas stay connected', () => {
  test('budget: after a FLUSHALL, two replicas and one started after it spend the cap once in all (0.10 USD, not 0.13)', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'flush-spend', CAP_USD);
    const [a, b] = [await replica(prefix, options), await replica(prefix, options)];
    for (const r of [a, b, a]) expect(await outcome(r.client.chat.completions.create(pricedBody()))).toBe('ok');
    const before = sim.tallies().sim!.costUsd;
    const perRequest = before / 3;
    for (const r of [a, b]) await eventually(() => Math.abs(spent(r) - before) < 1e-9, 'both know the spend');

    await admin().flushall();
    // A process started after the flush (a deploy, an autoscaler).
    const c = await replica(prefix, options);

    // One request at a time, each replica in turn; after each, every replica knows all the spend
    // (before the fix they never did: each counted its own, and C nothing from before the flush).
    let refused = 0;
    for (let round = 0; round < 10 && refused < 6; round++) {
      for (const r of [a, b, c]) {
        const result = await outcome(r.client.chat.completions.create(pricedBody()));
        expect(['ok', 'budget_exceeded']).toContain(result);
        if (result === 'budget_exceeded') refused++;
        const cost = sim.tallies().sim!.costUsd;
        for (const other of [a, b, c]) await eventually(() => Math.abs(spent(other) - cost) < 1e-9, `every replica knows the ${cost} USD spent`);
      }
    }
    // The cap holds for the three together (before the fix: 0.13 USD, the cap spent again after the flush).
    expect(sim.tallies().sim!.costUsd).toBeCloseTo(CAP_USD, 9);
    expect(perRequest).toBeCloseTo(0.01, 9);
    for (const r of [a, b, c]) expect(r.errors).toEqual([]);
  }, 60_000);

  test('statuses: after a FLUSHALL, a key revoked (401) and a key disabled by hand on one replica stay out of use for a process started after it', async () => {
    const [revoked, manual, good] = [fakeKey('flush-revoked'), fakeKey('flush-manual'), fakeKey('flush-good')];
    const model = 'gpt-4.1-mini';
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: revoked, revoked: true }, { key: manual }, { key: good }], models: [model] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `flush-revoked:${randomUUID()}:`;
    const options = {
      providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: revoked, id: 'revoked' }, { key: manual, id: 'manual' }, { key: good, id: 'good' }], models: [model] } },
      keySelection: 'round-robin' as const,
      deadlineMs: 10_000,
    };
    const body = () => ({ model, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });
    const a = await replica(prefix, options);
    a.manager.disableKey('sim', 'manual');
    for (let i = 0; i < 3; i++) expect(await outcome(a.client.chat.completions.create(body()))).toBe('ok');
    expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(1);
    const redisAdmin = admin();
    const held = async () => Object.keys(await redisAdmin.hgetall(`${prefix}keys`)).sort();
    for (let i = 0; i < 100 && (await held()).length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await held()).toEqual(['sim:manual', 'sim:revoked']);

    await redisAdmin.flushall();
    // A process started after the flush hears what the others knew: both keys out of use there too.
    const c = await replica(prefix, options);
    const keyStatus = (id: string) => c.manager.stats().providers.sim!.keys.find((k) => k.id === id)?.status;
    await eventually(() => keyStatus('revoked') === 'disabled' && keyStatus('manual') === 'disabled', 'the started replica holds both keys disabled');
    const results = await Promise.all(Array.from({ length: 6 }, () => outcome(c.client.chat.completions.create(body()))));
    expect(results).toEqual(Array(6).fill('ok'));
    expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(1);
    expect(sim.tallies().sim!.keys[manual]!.requests).toBe(0);
    // And Redis holds them again, for whoever starts next.
    expect(await held()).toEqual(['sim:manual', 'sim:revoked']);
  }, 60_000);

  test('eviction: a budget whose spend hash Redis dropped (the marker kept) is raised back; every replica, and one started after, knows all the spend', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'flush-evict', 10);
    const [a, b] = [await replica(prefix, options), await replica(prefix, options)];
    for (const r of [a, b, a]) expect(await outcome(r.client.chat.completions.create(pricedBody()))).toBe('ok');
    for (const r of [a, b]) await eventually(() => Math.abs(spent(r) - sim.tallies().sim!.costUsd) < 1e-9, 'both know the spend');
    const redisAdmin = admin();
    const budget = `${prefix}spend:${encodeURIComponent(a.manager.stats().budgets[0]!.id)}`;
    const held = async () => Object.values(await redisAdmin.hgetall(budget)).reduce((sum, v) => sum + Number(v), 0) / 1e9;
    const [lostA, lostB] = [record(a.manager, 'store:lost'), record(b.manager, 'store:lost')];

    // As `maxmemory` with a volatile-* policy would: the spend hash goes, nothing else.
    expect(await redisAdmin.del(budget)).toBe(1);
    expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    const cost = sim.tallies().sim!.costUsd;
    for (const r of [a, b]) await eventually(() => Math.abs(spent(r) - cost) < 1e-9, 'both know all the spend');
    for (let i = 0; i < 200 && Math.abs((await held()) - cost) > 1e-9; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await held()).toBeCloseTo(cost, 9);
    const c = await replica(prefix, options);
    await eventually(() => Math.abs(spent(c) - cost) < 1e-9, 'a replica started after it loads all the spend');
    for (const r of [a, b, c]) expect(r.errors).toEqual([]);
    // The replica that found the spend below what it knew says so; the other heard its notice.
    expect(lostA).toEqual([{ cause: 'evicted' }]);
    await eventually(() => lostB.length > 0, 'the other replica reports the loss');
    expect(lostB).toEqual([{ cause: 'notice' }]);
  }, 60_000);

  test('eviction: a key statuses hash Redis dropped (the marker kept) is restored at the next reservation of a replica that knew a key disabled; a replica started after it never uses the key (3 of 6 requests before)', async () => {
    const [manual, good] = [fakeKey('evict-manual'), fakeKey('evict-good')];
    const model = 'gpt-4.1-mini';
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: manual }, { key: good }], models: [model] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `evict-statuses:${randomUUID()}:`;
    const options = {
      providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: manual, id: 'manual' }, { key: good, id: 'good' }], models: [model], rpm: 1_000 } },
      keySelection: 'round-robin' as const,
      deadlineMs: 10_000,
    };
    const body = () => ({ model, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });
    const a = await replica(prefix, options);
    a.manager.disableKey('sim', 'manual');
    const redisAdmin = admin();
    for (let i = 0; i < 100 && (await redisAdmin.hlen(`${prefix}keys`)) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    // As `maxmemory` with an allkeys-* policy would: the statuses hash goes, nothing else.
    expect(await redisAdmin.del(`${prefix}keys`)).toBe(1);
    expect(await outcome(a.client.chat.completions.create(body()))).toBe('ok');
    expect(Object.keys(await redisAdmin.hgetall(`${prefix}keys`))).toEqual(['sim:manual']);

    const c = await replica(prefix, options);
    const results = await Promise.all(Array.from({ length: 6 }, () => outcome(c.client.chat.completions.create(body()))));
    expect(results).toEqual(Array(6).fill('ok'));
    expect(sim.tallies().sim!.keys[manual]?.requests ?? 0).toBe(0);
    for (const r of [a, c]) expect(r.errors).toEqual([]);
  }, 60_000);

  test('the loss is reported: after a FLUSHALL the replica that finds it fires `store:lost` (missing), the other on its notice, each once, and no `store:error`', async () => {
    const { prefix, options } = pricedSetup(server, 'flush-event', CAP_USD);
    const [a, b] = [await replica(prefix, options), await replica(prefix, options)];
    const lost = [record(a.manager, 'store:lost'), record(b.manager, 'store:lost')];
    const recovered = [record(a.manager, 'store:recovered'), record(b.manager, 'store:recovered')];
    expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    expect(lost).toEqual([[], []]);

    await admin().flushall();
    expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
    await eventually(() => lost[0]!.length > 0 && lost[1]!.length > 0, 'both replicas report the loss');
    expect(lost).toEqual([[{ cause: 'missing' }], [{ cause: 'notice' }]]);
    // Nothing was away: no outage to report.
    expect(recovered).toEqual([[], []]);
    for (const r of [a, b]) expect(r.errors).toEqual([]);
  }, 60_000);

  test('rate windows: after a FLUSHALL, a key whose shared window was full stays full for a process started after it (0 more requests in the period)', async () => {
    const key = fakeKey('flush-window');
    const model = 'gpt-4.1-mini';
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [model] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `flush-window:${randomUUID()}:`;
    // The windows' clock stands still: nothing leaves them during the test, whatever the machine's pace.
    const now = () => 1_800_000_000_000;
    const options = { providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key, id: 'k' }], models: [model], rpm: 4 } }, deadlineMs: 400 };
    const body = () => ({ model, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });
    const open = async () => (await storeReplica(redis.server.url, prefix, options, cleanups, 500, now)).client;
    const a = await open();
    for (let i = 0; i < 4; i++) expect(await outcome(a.chat.completions.create(body()))).toBe('ok');
    const requests = () => sim.tallies().sim!.keys[key]!.requests;
    expect(requests()).toBe(4);
    const redisAdmin = admin();
    const windows = async () => (await redisAdmin.keys(`${prefix}w:*`)).length;
    expect(await windows()).toBe(1);

    await redisAdmin.flushall();
    const c = await open();
    // The started replica's marker tells A, which raises the window back to what its last reservation left.
    for (let i = 0; i < 500 && (await windows()) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await windows()).toBe(1);
    const results = await Promise.all(Array.from({ length: 4 }, () => outcome(c.chat.completions.create(body()))));
    expect(results.filter((r) => r === 'ok')).toEqual([]);
    expect(requests()).toBe(4);
  }, 60_000);

  test('SIGKILL with a spend write unanswered: the write ioredis sends again to the restarted Redis is counted, not lost', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'flush-kill', 10);
    // The store on a client of the test's own, to see when the spend write is sent.
    const client = new Redis(redis.server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (times) => Math.min(50 * times, 1_000) });
    let scriptCalls = 0;
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = (...args) => {
      scriptCalls++;
      return evalsha(...args);
    };
    const store = new RedisStore({ client, prefix, retryMs: 50, timeoutMs: 500 });
    await store.ready();
    const manager = new KeyManager({ ...options, store });
    const recovered = record(manager, 'store:recovered');
    cleanups.unshift(async () => {
      await manager.close();
      await store.close();
      client.disconnect();
    });
    const openai = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    for (let i = 0; i < 3; i++) expect(await outcome(openai.chat.completions.create(pricedBody()))).toBe('ok');
    const budget = `${prefix}spend:${encodeURIComponent(manager.stats().budgets[0]!.id)}`;
    const redisAdmin = admin();
    const total = async () => Object.values(await redisAdmin.hgetall(budget)).reduce((sum, v) => sum + Number(v), 0) / 1e9;
    await eventually(() => Math.abs(spent({ manager }) - sim.tallies().sim!.costUsd) < 1e-9, 'the spend recorded');
    expect(await total()).toBeCloseTo(sim.tallies().sim!.costUsd, 9);

    // Redis stops answering, a request's spend is sent, and Redis dies with it unanswered.
    await redisAdmin.client('PAUSE', 60_000, 'ALL');
    const sent = scriptCalls;
    expect(await outcome(openai.chat.completions.create(pricedBody()))).toBe('ok');
    await eventually(() => scriptCalls > sent, 'the spend write sent');
    await redis.server.stop();
    await redis.server.start();
    await eventually(() => recovered.length === 1, 'store:recovered');

    const cost = sim.tallies().sim!.costUsd;
    await eventually(() => Math.abs(spent({ manager }) - cost) < 1e-9, 'the manager knows all the spend');
    const admin2 = admin();
    const held = Object.values(await admin2.hgetall(budget)).reduce((sum, v) => sum + Number(v), 0) / 1e9;
    expect(held).toBeCloseTo(cost, 9);
  }, 60_000);
});
