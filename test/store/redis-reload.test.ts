/**
 * A manager reloads the shared state at start and after Redis was away. The
 * reload's answer can be read after changes Redis made since it answered: the
 * subscription's socket and the command socket are read in no set order. Such
 * a late answer must not set back what the manager heard meanwhile: spend it
 * was told of, a key disabled or a circuit opened elsewhere. Real
 * `redis-server`, real SDK, simulator on msw; the late answer is made certain
 * by holding the reload's reply until the change has been heard.
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
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';
import { outcome, PRICED, pricedSetup, storeReplica } from '../support/store-replica';

const MODEL = PRICED.model;
const { server, cleanups } = mswSuite();
const redis = redisForSuite('reloads answered late');

const body = () => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });
const replica = (prefix: string, options: Omit<KeyManagerOptions, 'store'>) => storeReplica(redis.server.url, prefix, options, cleanups, 5_000);

/**
 * A manager whose first reload Redis answers at once but whose answer is read
 * only at `release()`: its store's client holds the reply of each pipeline (a
 * store uses one only for loads) until then.
 */
async function lateReplica(prefix: string, options: Omit<KeyManagerOptions, 'store'>, holdSpend = false) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let answered = false;
  let releaseSpend!: () => void;
  const spendHeld = new Promise<void>((resolve) => (releaseSpend = resolve));
  let spendsHeld = 0;
  const client = new Redis(redis.server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const readLate = new Proxy(client, {
    get(target, name) {
      if (name === 'pipeline') {
        return () => {
          const pipeline = target.pipeline();
          const exec = pipeline.exec.bind(pipeline);
          const late = () =>
            exec().then(async (results) => {
              await held;
              answered = true;
              return results;
            });
          return Object.assign(pipeline, { exec: late });
        };
      }
      if (holdSpend && (name === 'evalsha' || name === 'eval')) {
        // A spend script's reply (its first key a spend hash) is read only at `releaseSpend()`.
        return (...args: (string | number)[]) => {
          const run = (target[name] as (...a: (string | number)[]) => Promise<unknown>).apply(target, args);
          if (!String(args[2]).includes(':spend:')) return run;
          spendsHeld++;
          return run.then(async (reply) => {
            await spendHeld;
            return reply;
          });
        };
      }
      const value = Reflect.get(target, name, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const store = new RedisStore({ client: readLate, prefix, retryMs: 50, timeoutMs: 5_000 });
  await store.ready();
  const manager = new KeyManager({ ...options, store });
  cleanups.unshift(async () => {
    await manager.close();
    await store.close();
    client.disconnect();
  });
  return {
    manager,
    client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
    /** How many spend replies are held (with `holdSpend`). */
    spendsHeld: () => spendsHeld,
    /** Lets the held spend replies be read. */
    releaseSpend,
    /** Lets the reload's answer be read, and resolves once the manager has taken it on. */
    async answer(): Promise<void> {
      release();
      await eventually(() => answered, 'the reload answered');
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

/**
 * A store whose subscription holds the messages it receives until
 * `deliver()`: as when the command socket is read before the subscription's.
 */
async function slowToHear(prefix: string) {
  const waiting: (() => void)[] = [];
  let holding = true;
  const client = new Redis(redis.server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const hearsLate = new Proxy(client, {
    get(target, name) {
      if (name !== 'duplicate') {
        const value = Reflect.get(target, name, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (...args: Parameters<Redis['duplicate']>) => {
        const sub = target.duplicate(...args);
        const on = sub.on.bind(sub);
        sub.on = ((event: string, listener: (...a: unknown[]) => void) =>
          on(event, event !== 'message' ? listener : (...a: unknown[]) => (holding ? waiting.push(() => listener(...a)) : listener(...a)))) as Redis['on'];
        return sub;
      };
    },
  });
  const store = new RedisStore({ client: hearsLate, prefix, retryMs: 50, timeoutMs: 5_000 });
  await store.ready();
  cleanups.push(async () => void client.disconnect());
  return {
    store,
    held: () => waiting.length,
    deliver(): void {
      holding = false;
      for (const hear of waiting.splice(0)) hear();
    },
  };
}

describe.skipIf(!redis.available)('a reload whose answer is read after later changes', () => {
  test('spend announced after Redis answered is kept, not replaced by the older total', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'reload-spend', 100);
    const spender = await replica(prefix, options);
    const late = await lateReplica(prefix, options);

    expect(await outcome(spender.client.chat.completions.create(body()))).toBe('ok');
    const spent = sim.tallies().sim!.costUsd;
    await eventually(() => late.manager.stats().budgets[0]!.spentUsd >= spent - 1e-9, 'the spend announced to the late replica');
    await late.answer();
    // Redis had no spend when it answered the reload.
    expect(late.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(spent, 9);
  }, 30_000);

  test('a key disabled after Redis answered stays disabled, though the answer still shows it enabled', async () => {
    const [one, two] = [fakeKey('reload-one'), fakeKey('reload-two')];
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: one }, { key: two }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `reload-key:${randomUUID()}:`;
    const options = { providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: one, id: 'one' }, { key: two, id: 'two' }], models: [MODEL] } } };
    const admin = await replica(prefix, options);
    const status = (manager: KeyManager) => manager.stats().providers.sim!.keys.find((k) => k.id === 'one')?.status;
    // Redis holds a status for the key (disabled by hand, then enabled again): the answer will show it enabled.
    const watcher = await replica(prefix, options);
    admin.manager.disableKey('sim', 'one');
    await eventually(() => status(watcher.manager) === 'disabled', 'the first disable heard');
    admin.manager.enableKey('sim', 'one');
    await eventually(() => status(watcher.manager) === 'active', 'the enable heard');

    const late = await lateReplica(prefix, options);
    admin.manager.disableKey('sim', 'one');
    await eventually(() => status(late.manager) === 'disabled', 'the disable heard by the late replica');
    await late.answer();
    expect(status(late.manager)).toBe('disabled');
  }, 30_000);

  test('spend a reload already counted is not counted again when its announcement is heard after the reload', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'reload-twice', 100);
    const spender = await replica(prefix, options);
    const late = await slowToHear(prefix);
    expect(await outcome(spender.client.chat.completions.create(body()))).toBe('ok');
    const spent = sim.tallies().sim!.costUsd;
    await eventually(() => late.held() === 1, 'the announcement received (and held)');
    // A manager started now: its first load reads the spend from Redis.
    const manager = new KeyManager({ ...options, store: late.store });
    cleanups.unshift(() => manager.close());
    await eventually(() => manager.stats().budgets[0]!.spentUsd > 0, 'the first load');
    late.deliver();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(manager.stats().budgets[0]!.spentUsd).toBeCloseTo(spent, 9);
  }, 30_000);

  test('spend this manager recorded while its reload was on its way is kept, though the reload was answered before the spend was written', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'reload-own', 100);
    const late = await lateReplica(prefix, options, true);
    // Past the first-load wait, the request goes on while the reload is still held: its spend is written after Redis answered it.
    expect(await outcome(late.client.chat.completions.create(body()))).toBe('ok');
    const spent = sim.tallies().sim!.costUsd;
    await eventually(() => late.spendsHeld() === 1, 'the spend written (its reply held)');
    expect(late.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(spent, 9);
    await late.answer();
    late.releaseSpend();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Redis had no spend when it answered the reload; the manager's own is kept.
    expect(late.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(spent, 9);
  }, 30_000);
});
