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

    test('a fresh window admits its limit at once: rpm 3 takes three requests, the fourth waits until they leave', async () => {
      await setup();
      for (let i = 0; i < 3; i++) expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      const refused = await s.a.reserve(KEY, RPM3, 0);
      // Counted within 250 ms, in the slot of the first second (slots of a 60th of the period): they leave a minute after it ends.
      expect(refused).toMatchObject({ ok: false, waitMs: 61_000, requests: 0, requestsFreeMs: 61_000 });
    });

    test('a reservation stays in the window a whole period: nothing refills before (a sliding window, whatever the upstream)', async () => {
      await setup();
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      t += 30_000;
      expect(await s.b.reserve(KEY, RPM3, 0)).toMatchObject({ ok: true, requests: 1, requestsFreeMs: 31_000 });
      expect(await s.b.reserve(KEY, RPM3, 0)).toMatchObject({ ok: true, requests: 0 });
      t += 30_999;
      expect(await s.a.reserve(KEY, RPM3, 0)).toMatchObject({ ok: false, waitMs: 1, requestsFreeMs: 1 });
      t += 1;
      // The first left; the two taken at 30 s leave a minute after their slot (at 91 s).
      expect(await s.a.reserve(KEY, RPM3, 0)).toMatchObject({ ok: true, requests: 0 });
      expect(await s.b.reserve(KEY, RPM3, 0)).toMatchObject({ ok: false, waitMs: 30_000 });
    });

    test('two sessions draw on one window: what A took, B cannot', async () => {
      await setup();
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, RPM3, 0)).ok).toBe(false);
      expect((await s.a.reserve(KEY, RPM3, 0)).ok).toBe(false);
    });

    test('never more than the limit in any sliding period: rpm 3 driven every 7 s for 5 minutes', async () => {
      await setup();
      const granted: number[] = [];
      for (let i = 0; i < 43; i++, t += 7_000) {
        const session = i % 2 === 0 ? s.a : s.b;
        if ((await session.reserve(KEY, RPM3, 0)).ok) granted.push(t);
      }
      for (const start of granted) expect(granted.filter((at) => at >= start && at < start + 60_000).length).toBeLessThanOrEqual(3);
      // Each grant leaves 61–62 s later (its slot, a minute): three per 63 s at this step.
      expect(granted.length).toBeGreaterThanOrEqual(14);
    });

    test('answers carry the shared levels left after the call, and the moment the reservation counts from', async () => {
      await setup();
      const first = await s.a.reserve(KEY, { rpm: 10, tpm: 1_000 }, 100);
      expect(first).toMatchObject({ ok: true, requests: 9, tokens: 900, at: t });
      const second = await s.b.reserve(KEY, { rpm: 10, tpm: 1_000 }, 50);
      expect(second).toMatchObject({ ok: true, requests: 8, tokens: 850 });
    });

    test('a dimension without a limit reports no level and never refuses', async () => {
      await setup();
      const answer = await s.a.reserve(KEY, { rpm: 5, tpm: undefined }, 1e9);
      expect(answer).toMatchObject({ ok: true, requests: 4, tokens: undefined });
    });

    test('tokens: a reservation that does not fit waits until enough have left', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 600 };
      expect((await s.a.reserve(KEY, limits, 300)).ok).toBe(true);
      t += 10_000;
      expect((await s.a.reserve(KEY, limits, 200)).ok).toBe(true);
      // 300 missing: the first 300 leave at 61 s, enough.
      expect(await s.b.reserve(KEY, limits, 400)).toMatchObject({ ok: false, waitMs: 51_000, tokens: 100, tokensFreeMs: 51_000 });
      // 500 missing: the 200 taken at 10 s must leave too (at 71 s).
      expect(await s.b.reserve(KEY, limits, 600)).toMatchObject({ ok: false, waitMs: 61_000 });
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
      s.b.adjust(KEY, limits, 0, 1_500); // more than the limit: a debt later reservations wait out
      await expect.poll(async () => (await s.a.reserve(KEY, limits, 0)).tokens).toBe(-700);
      expect(await s.a.reserve(KEY, limits, 1)).toMatchObject({ ok: false });
    });

    test("an adjustment changes its own reservation's slot: a give-back never frees a later reservation's units", async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 1_000 };
      const early = await s.a.reserve(KEY, limits, 400);
      t += 61_000; // the early reservation has left the window
      expect(await s.b.reserve(KEY, limits, 600)).toMatchObject({ ok: true, tokens: 400 });
      s.a.adjust(KEY, limits, 0, -400, (early as { at: number }).at);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await s.a.reserve(KEY, limits, 0)).toMatchObject({ tokens: 400 });
      // A charge for a reservation that has left counts from now.
      s.a.adjust(KEY, limits, 0, 100, (early as { at: number }).at);
      await expect.poll(async () => (await s.a.reserve(KEY, limits, 0)).tokens).toBe(300);
    });

    test('a give-back of a reservation still in the window frees its units at once', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 1_000 };
      const first = await s.a.reserve(KEY, limits, 700);
      t += 20_000;
      expect(await s.b.reserve(KEY, limits, 300)).toMatchObject({ ok: true, tokens: 0 });
      s.a.adjust(KEY, limits, 0, -500, (first as { at: number }).at);
      await expect.poll(async () => (await s.b.reserve(KEY, limits, 0)).tokens).toBe(500);
      // What is left of the first (200) leaves with its slot, at 61 s.
      t += 41_000;
      expect(await s.b.reserve(KEY, limits, 0)).toMatchObject({ tokens: 700 });
    });

    test('a window with a period: rpm 2 per 3 s admits two, then waits until they leave (slots of 50 ms)', async () => {
      await setup();
      const limits = { rpm: 2, tpm: undefined, requestsPeriodMs: 3_000 };
      expect((await s.a.reserve(KEY, limits, 0)).ok).toBe(true);
      expect((await s.b.reserve(KEY, limits, 0)).ok).toBe(true);
      expect(await s.a.reserve(KEY, limits, 0)).toMatchObject({ ok: false, waitMs: 3_300 });
    });

    test('a deferred adjustment rides with the next reservation of the key', async () => {
      await setup();
      const limits = { rpm: undefined, tpm: 1_000, tokensPeriodMs: 10_000 };
      const first = await s.a.reserve(KEY, limits, 800);
      t += 2_000;
      s.a.defer!(KEY, limits, 0, -600, (first as { at: number }).at); // used 200 of the 800 reserved
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

    test('an object A remembers, B finds (kind, provider, key id), until its TTL; an id never remembered, and another deployment, find none', async () => {
      await setup();
      const home = { provider: 'open:ai/x', keyId: 'k 1', kind: 'file' as const };
      await s.a.rememberObject!('file-abc/1', home, 60_000);
      await s.a.rememberObject!('resp_1', { ...KEY, kind: 'response' }, 60_000);
      expect(await s.b.objectHome!('file-abc/1')).toEqual(home);
      expect(await s.b.objectHome!('resp_1')).toEqual({ ...KEY, kind: 'response' });
      expect(await s.b.objectHome!('file-unknown')).toBeUndefined();
      const stranger = s.other();
      expect(await stranger.objectHome!('resp_1')).toBeUndefined();
      await stranger.close();
      if (impl.name !== 'MemoryStore') return; // Redis expires on its own clock (PX), not the injected one.
      t += 60_000;
      expect(await s.b.objectHome!('resp_1')).toBeUndefined();
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
    expect(await session.reserve(KEY, limits, 500)).toMatchObject({ ok: true, at: t });
    session.defer!(KEY, limits, 0, -400, t); // the reply used 100 of the 500 estimated
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
