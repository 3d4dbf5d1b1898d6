/**
 * Issue 11, "what it must show" 1 across replicas: four managers, each on its
 * own RedisStore on one redis-server (four replicas), offered 4× the capacity
 * of 3 keys at once. Against a sliding-window upstream and against a token
 * bucket (the simulator's), with limits configured (and stated in the
 * headers): 0 upstream 429s, 0 application errors, no key over its limit in
 * any sliding period, the capacity used as it frees.
 *
 * Deterministic: keyplex, the stores' scripts and the upstream run on one
 * fake clock; it moves only when every request is either done or waiting on
 * a timer (no reservation in flight), and the assertions are counts.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, expect, test, vi } from 'vitest';
import { keyplex, type StateStore } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { TokenBucket, formatDuration } from '../../src/testing/rate-window';
import { managedClients } from '../support/manage';
import { PATIENT_REDIS_MS, redisForSuite } from '../support/redis';
import '../support/setup';
import { fakeClock, quiesce } from '../support/time';
import { chatReply, errorReply, keyRing, provider, type KeyRing } from '../support/upstream';

const redis = redisForSuite('a burst on four replicas sharing one Redis');
/** Closed after each test (after its managers and stores: registered later, run later). */
const closing: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0)) await close();
});
const manageCleanup = (close: () => Promise<void>) => void closing.push(close);
const manage = managedClients();

const BASE = 'https://api.replica-burst.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const REPLICAS = 4;
const LIMIT = 10;
const PERIOD_MS = 10_000;
/** What keyplex may add to a period, at most: the upstream's count lag (250 ms) and one slot (a 60th of the period). */
const SLACK_MS = 250 + Math.ceil(PERIOD_MS / 60);

type Shape = 'sliding window' | 'token bucket';

/** An upstream limiting each key to LIMIT per PERIOD_MS in `shape`, stating it in OpenAI's headers; 429 above. */
function upstream(ring: KeyRing, shape: Shape) {
  const accepted = new Map<string, number[]>(ring.keys.map((k) => [k.id, []]));
  const buckets = new Map(ring.keys.map((k) => [k.id, new TokenBucket(LIMIT, PERIOD_MS)]));
  let rejected = 0;
  provider(BASE, (call) => {
    const id = ring.idOf(call.key);
    const now = Date.now();
    const mine = accepted.get(id)!;
    const recent = mine.filter((at) => at > now - PERIOD_MS);
    const bucket = buckets.get(id)!;
    const room = shape === 'sliding window' ? LIMIT - recent.length : bucket.remaining(now);
    const resetMs = shape === 'sliding window' ? (recent.length === 0 ? 0 : recent[0]! + PERIOD_MS - now) : bucket.resetMs(now);
    const headers = (remaining: number) => ({
      'x-ratelimit-limit-requests': String(LIMIT),
      'x-ratelimit-remaining-requests': String(remaining),
      'x-ratelimit-reset-requests': formatDuration(Math.ceil(resetMs)),
    });
    if (room < 1) {
      rejected++;
      return errorReply(429, 'rate_limit_exceeded', { ...headers(0), 'retry-after-ms': String(Math.ceil(resetMs)) });
    }
    bucket.take(1, now);
    mine.push(now);
    return chatReply('gpt-4.1', 'hello', {}, { headers: headers(room - 1) });
  });
  return { accepted, rejected: () => rejected };
}

/** The most any key was accepted in one sliding period `(t − PERIOD_MS, t]`. */
function busiestPeriod(accepted: Map<string, number[]>): number {
  let busiest = 0;
  for (const times of accepted.values()) {
    for (const end of times) busiest = Math.max(busiest, times.filter((at) => at > end - PERIOD_MS && at <= end).length);
  }
  return busiest;
}

/**
 * A RedisStore on the suite's server on the fake clock, counting the
 * reservations it has in flight, and in `commands` every command its client
 * has sent and not had answered (a usage correction's flush, a write): the
 * clock moves only when none is on its way, however slow a loaded machine
 * makes Redis's replies.
 */
async function replicaStore(prefix: string, inFlight: { reservations: number; total: number; commands: number }): Promise<StateStore> {
  const client = new Redis(redis.server.url);
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: { promise: Promise<unknown> }, stream?: unknown) => {
    inFlight.commands++;
    command.promise.then(
      () => inFlight.commands--,
      () => inFlight.commands--,
    );
    return send(command as never, stream as never);
  }) as typeof client.sendCommand;
  const store = new RedisStore({ client, prefix, now: () => Date.now(), timeoutMs: PATIENT_REDIS_MS });
  // The store does not close a client it was given.
  manageCleanup(() => client.quit().then(() => undefined, () => undefined));
  await store.ready();
  const open = store.open.bind(store);
  store.open = (listener) => {
    const session = open(listener);
    const reserve = session.reserve.bind(session);
    session.reserve = async (...args) => {
      inFlight.reservations++;
      inFlight.total++;
      try {
        return await reserve(...args);
      } finally {
        inFlight.reservations--;
      }
    };
    return session;
  };
  return store;
}

for (const shape of ['sliding window', 'token bucket'] as const) {
  test.skipIf(!redis.available)(
    `four replicas, 4× the capacity of 3 keys at once against a ${shape}: 0 upstream 429s, 0 app errors, no key over its limit in any period, the capacity used as it frees`,
    async () => {
      const prefix = `burst:${randomUUID()}:`;
      const inFlight = { reservations: 0, total: 0, commands: 0 };
      const stores: StateStore[] = [];
      for (let i = 0; i < REPLICAS; i++) stores.push(await replicaStore(prefix, inFlight));
      fakeClock();
      vi.setSystemTime(1_700_000_000_000);
      const ring = keyRing('a', 'b', 'c');
      const up = upstream(ring, shape);
      const clients = stores.map(
        (store) => manage({ providers: { burst: { baseURL: BASE, keys: ring.keys, requests: { limit: LIMIT, periodMs: PERIOD_MS } } }, store }).client,
      );
      const capacity = ring.keys.length * LIMIT;
      const start = Date.now();
      let ok = 0;
      let failed = 0;
      const all = Array.from({ length: 4 * capacity }, (_, i) =>
        clients[i % REPLICAS]!.chat.completions.create(BODY, keyplex.options({ deadlineMs: 10 * PERIOD_MS })).then(
          () => ok++,
          () => failed++,
        ),
      );
      const accepted = () => [...up.accepted.values()].reduce((n, times) => n + times.length, 0);
      // Everything in flight has gone as far as it can without the clock: no reservation waiting for Redis.
      const settle = async () => {
        do await quiesce(() => accepted() * 1e6 + inFlight.total * 1e3 + ok + failed);
        while (inFlight.reservations > 0 || inFlight.commands > 0);
      };
      await settle();
      expect(accepted()).toBe(capacity);
      for (let step = 0; step < 200 && ok + failed < all.length; step++) {
        await vi.advanceTimersToNextTimerAsync();
        await settle();
      }
      await Promise.all(all);
      const finishedAfter = Math.max(...[...up.accepted.values()].flat()) - start;
      console.info(
        `${shape}: ${ok} ok, ${failed} failed, ${up.rejected()} upstream 429s, busiest key ${busiestPeriod(up.accepted)} in a period; ` +
          `served at ${[...new Set([...up.accepted.values()].flat())].map((at) => at - start).join(', ')} ms; ${inFlight.total} reservations`,
      );

      expect({ ok, failed, upstream429s: up.rejected() }).toEqual({ ok: 4 * capacity, failed: 0, upstream429s: 0 });
      expect(busiestPeriod(up.accepted)).toBeLessThanOrEqual(LIMIT);
      // The capacity used as it frees: each key's limit at once, and again each time a period has passed (plus the count lag and a slot).
      expect(finishedAfter).toBeLessThanOrEqual(3 * (PERIOD_MS + SLACK_MS));
      for (const times of up.accepted.values()) expect(times.filter((at) => at === start)).toHaveLength(LIMIT);
    },
    120_000,
  );
}
