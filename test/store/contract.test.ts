/**
 * The StateStore contract (DESIGN.md §5): one suite, run against both stores —
 * `MemoryStore` and `RedisStore` on a real `redis-server`. Two sessions stand
 * for two managers (for Redis, two stores with their own connections and the
 * same prefix: two replicas). The windows run on an injected clock.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { MemoryStore, type StateStore, type StoreChange, type StoreListener, type StoreSession } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { START_LAG_MS } from '../../src/store/scripts';
import { PATIENT_REDIS_MS, redisForSuite } from '../support/redis';

const redis = redisForSuite('store contract (RedisStore)');

/** A session's listener that records what it hears. */
function recorder() {
  const changes: StoreChange[] = [];
  const waiters: (() => void)[] = [];
  const listener: StoreListener = {
    change: (change) => {
      changes.push(change);
      for (const wake of waiters.splice(0)) wake();
    },
    error: () => {},
    recovered: () => {},
  };
  /** Waits (real time, at most 15 s: generous for a loaded machine) until `count` changes arrived. */
  const received = async (count: number) => {
    const deadline = Date.now() + 15_000;
    while (changes.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} change(s), got ${changes.length}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return changes;
  };
  return { listener, changes, received };
}

interface Pair {
  a: StoreSession;
  b: StoreSession;
  heardByA: ReturnType<typeof recorder>;
  heardByB: ReturnType<typeof recorder>;
  /** A store of another deployment: shares nothing with the pair. */
  other: () => StoreSession;
}

interface Implementation {
  name: string;
  available: boolean;
  /** Two sessions on one shared state, with the clock `now`. */
  pair: (now: () => number) => Promise<Pair>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const implementations: Implementation[] = [
  {
    name: 'MemoryStore',
    available: true,
    pair: async (now) => {
      const store = new MemoryStore({ now });
      const heardByA = recorder();
      const heardByB = recorder();
      const a = store.open(heardByA.listener);
      const b = store.open(heardByB.listener);
      cleanups.push(() => a.close(), () => b.close());
      const other = () => new MemoryStore({ now }).open(recorder().listener);
      return { a, b, heardByA, heardByB, other };
    },
  },
  {
    name: 'RedisStore',
    available: redis.available,
    pair: async (now) => {
      const prefix = `contract:${randomUUID()}:`;
      const make = async (storePrefix: string): Promise<RedisStore> => {
        const store = new RedisStore({ url: redis.server.url, prefix: storePrefix, now, timeoutMs: PATIENT_REDIS_MS });
        cleanups.push(() => store.close());
        await store.ready();
        return store;
      };
      const heardByA = recorder();
      const heardByB = recorder();
      const a = (await make(prefix)).open(heardByA.listener);
      const b = (await make(prefix)).open(heardByB.listener);
      const otherStore: StateStore = await make(`contract:${randomUUID()}:`);
      return { a, b, heardByA, heardByB, other: () => otherStore.open(recorder().listener) };
    },
  },
];

const KEY = { provider: 'openai', keyId: 'k1' };
const RPM3 = { rpm: 3, tpm: undefined };

for (const impl of implementations) {
  describe.skipIf(!impl.available)(`${impl.name} honours the StateStore contract`, () => {
    let t = 1_700_000_000_000;
    const now = () => t;
    let s: Pair;
    beforeAll(() => {
      t = 1_700_000_000_000;
    });
    const setup = async () => {
      s = await impl.pair(now);
    };

    test('a fresh window starts full: rpm 3 takes three requests, the fourth waits the start lag + 60 000 / 3 ms', async () => {
      await setup();
      for (let i = 0; i < 3; i++) expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      const refused = await s.a.reserve(KEY, RPM3, 0);
      expect(refused).toMatchObject({ ok: false, waitMs: START_LAG_MS + 20_000 });
    });

    test('refilling starts the start lag after a take from a full window (the provider counts our first request later)', async () => {
      await setup();
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      t += START_LAG_MS;
      expect(await s.b.reserve(KEY, RPM3, 0)).toMatchObject({ ok: true, requests: 1 });
      t += 10_000; // half a request refilled since the lag ended
      expect(await s.b.reserve(KEY, RPM3, 0)).toMatchObject({ ok: true, requests: 0.5 });
    });

    test('two sessions draw on one window: what A took, B cannot', async () => {
      await setup();
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(false);
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(false);
    });

    test('the window refills continuously: one request per 20 s at rpm 3', async () => {
      await setup();
      for (let i = 0; i < 3; i++) await s.a.reserve(KEY, RPM3, 0);
      t += START_LAG_MS + 19_999;
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(false);
      t += 1;
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(false);
    });

    test('answers carry the shared levels left after the call', async () => {
      await setup();
      const first = await s.a.reserve(KEY, { rpm: 10, tpm: 1_000 }, 100);
      expect(first).toMatchObject({ ok: true, requests: 9, tokens: 900 });
      const second = await s.b.reserve(KEY, { rpm: 10, tpm: 1_000 }, 50);
      expect(second).toMatchObject({ ok: true, requests: 8, tokens: 850 });
    });

    test('a dimension without a limit reports no level and never refuses', async () => {
      await setup();
      const answer = await s.a.reserve(KEY, { rpm: 5, tpm: undefined }, 1e9);
      expect(answer).toMatchObject({ ok: true, requests: 4, tokens: undefined });
    });

    test('tokens: a reservation that does not fit waits for the refill of the missing tokens', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 600 };
      expect((await s.a.reserve(KEY, limits, 500)).ok).toBe(true);
      // 200 missing at 600 per minute = 10 per second: 20 s, after the start lag.
      expect(await s.b.reserve(KEY, limits, 300)).toMatchObject({ ok: false, waitMs: START_LAG_MS + 20_000 });
    });

    test('tokens above the limit can never fit: waitMs is Infinity', async () => {
      await setup();
      expect(await s.a.reserve(KEY, { rpm: 10, tpm: 100 }, 101)).toMatchObject({ ok: false, waitMs: Infinity });
    });

    test('adjust gives tokens back (a refund) and charges more (usage above the estimate)', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 1_000 };
      await s.a.reserve(KEY, limits, 800);
      s.a.adjust(KEY, limits, 0, -600); // used 200 of the 800 reserved
      await expect.poll(async () => (await s.b.reserve(KEY, limits, 0)).tokens).toBe(800);
      s.b.adjust(KEY, limits, 0, 1_500); // a debt, floored at −capacity
      await expect.poll(async () => (await s.a.reserve(KEY, limits, 0)).tokens).toBe(-700);
      expect(await s.a.reserve(KEY, limits, 1)).toMatchObject({ ok: false });
    });

    test('a window with a period: rpm 2 per 3 s refills one request per 1.5 s', async () => {
      await setup();
      const limits = { rpm: 2, tpm: undefined, requestsPeriodMs: 3_000 };
      expect((await s.a.reserve(KEY, limits, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, limits, 0)).ok).toBe(true);
      expect(await s.a.reserve(KEY, limits, 0)).toMatchObject({ ok: false, waitMs: START_LAG_MS + 1_500 });
    });

    test('a deferred adjustment rides with the next reservation of the key', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 1_000, tokensPeriodMs: 10_000 };
      await s.a.reserve(KEY, limits, 800);
      s.a.defer!(KEY, limits, 0, -600); // used 200 of the 800 reserved
      expect(await s.a.reserve(KEY, limits, 100)).toMatchObject({ ok: true, tokens: 700 });
      expect(await s.b.reserve(KEY, limits, 0)).toMatchObject({ tokens: 700 });
    });

    test('a key status set by A reaches B (not A) and is in the snapshot', async () => {
      await setup();
      s.a.setKey(KEY, { disabled: 'unauthorized', cooldownUntil: 0 });
      const [change] = await s.heardByB.received(1);
      expect(change).toEqual({ kind: 'key', key: KEY, status: { disabled: 'unauthorized', cooldownUntil: 0 } });
      expect(s.heardByA.changes).toEqual([]);
      const snapshot = await s.b.load([]);
      expect(snapshot.keys).toEqual([{ key: KEY, status: { disabled: 'unauthorized', cooldownUntil: 0 } }]);
    });

    test("a reservation for a key the store holds disabled is refused with the reason, its windows untouched, in the same call; another owner's and an enabled one's are not", async () => {
      await setup();
      const group = { provider: '', keyId: 'group:shared' };
      const other = { provider: 'openai', keyId: 'k2' };
      await s.a.setKey(KEY, { disabled: 'unauthorized', cooldownUntil: 0 });
      expect(await s.b.reserve(group, RPM3, 0, KEY)).toEqual({ ok: false, waitMs: Infinity, requests: undefined, tokens: undefined, disabled: 'unauthorized' });
      expect(await s.b.reserve(group, RPM3, 0, other)).toMatchObject({ ok: true, requests: 2 });
      expect(await s.b.reserve(group, RPM3, 0)).toMatchObject({ ok: true, requests: 1 });
      await s.a.setKey(KEY, { disabled: null, cooldownUntil: 0 });
      expect(await s.b.reserve(group, RPM3, 0, KEY)).toMatchObject({ ok: true, requests: 0 });
    });

    test('the latest status wins: an enable after a disable leaves the key enabled', async () => {
      await setup();
      s.a.setKey(KEY, { disabled: 'manual', cooldownUntil: 0 });
      s.a.setKey(KEY, { disabled: null, cooldownUntil: 0 });
      await s.heardByB.received(2);
      expect((await s.b.load([])).keys).toEqual([{ key: KEY, status: { disabled: null, cooldownUntil: 0 } }]);
    });

    test('a circuit state set by A reaches B and is in the snapshot, key and deployment scopes apart', async () => {
      await setup();
      const open = { state: 'open' as const, openUntil: t + 30_000, reopens: 0, probesSucceeded: 0, policy: { failures: 0 } };
      s.a.setCircuit({ scope: 'key', provider: 'openai', keyId: 'k1' }, open);
      s.a.setCircuit({ scope: 'deployment', provider: 'openai', upstreamModel: 'gpt-4.1' }, { ...open, openUntil: t + 5_000 });
      const changes = await s.heardByB.received(2);
      expect(changes[0]).toEqual({ kind: 'circuit', circuit: { scope: 'key', provider: 'openai', keyId: 'k1' }, snapshot: open });
      const circuits = (await s.b.load([])).circuits;
      expect(circuits).toHaveLength(2);
      expect(circuits).toContainEqual({ circuit: { scope: 'deployment', provider: 'openai', upstreamModel: 'gpt-4.1' }, snapshot: { ...open, openUntil: t + 5_000 } });
    });

    test('spend reaches B and adds up per time bucket in the snapshot', async () => {
      await setup();
      const day = { id: 'overall/day/calendar', bucketMs: 1_440_000, windowMs: 86_400_000 };
      const other = { id: 'model:gpt/day', bucketMs: 1_440_000, windowMs: 86_400_000 };
      s.a.addSpend({ budgets: [day, other], nanos: 1_500_000, at: t });
      s.b.addSpend({ budgets: [day], nanos: 500_000, at: t + 1 });
      s.a.addSpend({ budgets: [day], nanos: 250_000, at: t + day.bucketMs });
      const heard = await s.heardByB.received(2);
      expect(heard[0]).toEqual({ kind: 'spend', budgets: ['overall/day/calendar', 'model:gpt/day'], nanos: 1_500_000, at: t });
      const start = Math.floor(t / day.bucketMs) * day.bucketMs;
      await expect
        .poll(async () => (await s.a.load([day, other])).spend)
        .toEqual([
          { budget: day.id, buckets: [[start, 2_000_000], [start + day.bucketMs, 250_000]] },
          { budget: other.id, buckets: [[start, 1_500_000]] },
        ]);
    });

    test('another deployment (another store or prefix) shares nothing', async () => {
      await setup();
      for (let i = 0; i < 3; i++) await s.a.reserve(KEY, RPM3, 0);
      s.a.setKey(KEY, { disabled: 'manual', cooldownUntil: 0 });
      await s.heardByB.received(1);
      const stranger = s.other();
      expect((await stranger.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await stranger.load([])).keys).toEqual([]);
      await stranger.close();
    });

    test('a session is shared once another is open, and hears nothing once closed', async () => {
      await setup();
      expect(s.a.shared).toBe(true);
      await s.b.close();
      s.a.setKey(KEY, { disabled: 'manual', cooldownUntil: 0 });
      // A third session hears the change; the closed one does not.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(s.heardByB.changes).toEqual([]);
    });
  });
}

test.skipIf(!redis.available)('RedisStore: with a learnt limit an attempt costs one round trip — the usage adjustment rides with the next reservation', async () => {
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.server.url, { enableOfflineQueue: false, lazyConnect: false });
  let t = 1_700_000_000_000;
  const store = new RedisStore({ client, prefix: `contract:${randomUUID()}:`, now: () => t });
  cleanups.push(async () => {
    await store.close();
    client.disconnect();
  });
  await store.ready();
  const session = store.open(recorder().listener);
  const limits = { rpm: 100, tpm: 10_000, requestsPeriodMs: 60_000, tokensPeriodMs: 60_000 };
  const calls: string[] = [];
  const evalsha = client.evalsha.bind(client);
  (client as unknown as { evalsha: typeof client.evalsha }).evalsha = ((...args: Parameters<typeof client.evalsha>) => {
    calls.push('evalsha');
    return evalsha(...args);
  }) as typeof client.evalsha;
  for (let attempt = 0; attempt < 10; attempt++) {
    expect((await session.reserve(KEY, limits, 500)).ok).toBe(true);
    session.defer!(KEY, limits, 0, -400); // the reply used 100 of the 500 estimated
    t += 10;
  }
  expect(calls).toHaveLength(10);
  // Nine adjustments rode along; the last is still held (a reservation or the flush carries it).
  expect(await session.reserve(KEY, limits, 0)).toMatchObject({ ok: true, tokens: expect.closeTo(10_000 - 10 * 100, 0) });
});

test('a MemoryStore session alone is not shared: its manager keeps the whole truth and never asks', () => {
  const store = new MemoryStore();
  const a = store.open(recorder().listener);
  expect(a.shared).toBe(false);
  const b = store.open(recorder().listener);
  expect(a.shared).toBe(true);
  void b.close();
  expect(a.shared).toBe(false);
});
