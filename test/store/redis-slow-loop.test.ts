/**
 * A slow event loop is not a Redis outage (issue 12, item 10). A process whose
 * loop is blocked (CPU-bound work, a loaded machine) reads Redis's replies
 * late; that must not make it declare `store:error` and fall back to local
 * limits. A Redis that really stops answering (SIGSTOP) still is an outage,
 * and once it answers again the store returns to shared limits within
 * `retryMs` or so. The loop is blocked with a synchronous busy wait, so what is
 * asserted does not depend on the machine's speed.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../src/index';
import { RedisStore, type StoreFailure, type StoreListener } from '../../src/store/redis';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { record } from '../support/events';
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';

const MODEL = 'gpt-4.1-mini';
const TIMEOUT_MS = 100;
const { server, cleanups } = mswSuite();
const redis = redisForSuite('RedisStore under a blocked event loop');

/** Blocks this process's event loop for `ms` (what a CPU-bound handler does). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

async function openStore() {
  // The shared windows' clock stands still: no refill, so levels count reservations exactly.
  const at = Date.now();
  const store = new RedisStore({ url: redis.server.url, prefix: `slow-loop:${randomUUID()}:`, timeoutMs: TIMEOUT_MS, retryMs: 50, now: () => at });
  await store.ready();
  const failures: StoreFailure[] = [];
  let recoveries = 0;
  const listener: StoreListener = { change: () => {}, error: (failure) => void failures.push(failure), recovered: () => void recoveries++ };
  const session = store.open(listener);
  cleanups.unshift(async () => {
    await session.close();
    await store.close();
  });
  return { store, session, failures, recoveries: () => recoveries };
}

const ref = { provider: 'sim', keyId: 'k' };
const limits = { rpm: 1_000, tpm: undefined };

describe.skipIf(!redis.available)('a blocked event loop is not a Redis outage', () => {
  test('reservations answered while the loop was blocked (4× and 10× timeoutMs) are taken, not declared failures', async () => {
    const { store, session, failures } = await openStore();
    for (const blockMs of [4 * TIMEOUT_MS, 10 * TIMEOUT_MS, 4 * TIMEOUT_MS]) {
      const pending = Array.from({ length: 4 }, () => session.reserve(ref, limits, 0));
      busy(blockMs);
      const answers = await Promise.all(pending);
      for (const answer of answers) expect(answer).toMatchObject({ ok: true });
      expect(answers.some((a) => 'degraded' in a && a.degraded)).toBe(false);
    }
    // A busy loop that starts while the reply is on its way, as a timer that fires late.
    const late = session.reserve(ref, limits, 0);
    setTimeout(() => busy(3 * TIMEOUT_MS), 1);
    expect(await late).toMatchObject({ ok: true });
    expect(failures).toEqual([]);
    expect(store.healthy).toBe(true);
    // 13 reservations, all taken in the shared window, and this one: 1,000 − 14 left.
    const check = await session.reserve(ref, limits, 0);
    expect(check).toMatchObject({ ok: true, requests: 1_000 - 14 });
  }, 30_000);

  test('through the SDK: requests sent while the loop is blocked stay on shared limits, no store:error', async () => {
    const key = fakeKey('slow-loop');
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const store = new RedisStore({ url: redis.server.url, prefix: `slow-loop-sdk:${randomUUID()}:`, timeoutMs: TIMEOUT_MS, retryMs: 50 });
    await store.ready();
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 6_000 } }, store, deadlineMs: 20_000 });
    cleanups.unshift(async () => {
      await manager.close();
      await store.close();
    });
    const errors = record(manager, 'store:error');
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const body = { model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 4 };
    for (let round = 0; round < 3; round++) {
      const requests = Array.from({ length: 8 }, () => client.chat.completions.create(body).then(() => 'ok', (e: unknown) => getKeyplexDetails(e)?.code ?? String(e)));
      // Block the loop while the reservations are on their way, several times over.
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        busy(3 * TIMEOUT_MS);
      }
      expect(await Promise.all(requests)).toEqual(Array(8).fill('ok'));
    }
    expect(errors).toEqual([]);
    expect(store.healthy).toBe(true);
  }, 60_000);

  test('a Redis that stops answering (SIGSTOP) is an outage: store:error, then back on shared limits soon after SIGCONT', async () => {
    const { store, session, failures, recoveries } = await openStore();
    const admin = new Redis(redis.server.url);
    const info = await admin.info('server');
    admin.disconnect();
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(await session.reserve(ref, limits, 0)).toMatchObject({ ok: true });
    process.kill(pid, 'SIGSTOP');
    let stopped = true;
    cleanups.unshift(async () => {
      if (stopped) process.kill(pid, 'SIGCONT');
    });
    // Fail-open: the reservation goes through on local state, and the outage is declared once.
    const during = await session.reserve(ref, limits, 0);
    expect(during).toMatchObject({ ok: true, degraded: true });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ operation: 'reserve', failMode: 'open' });
    expect(failures[0]!.message).toMatch(/did not answer a reservation within 100 ms/);
    expect(store.healthy).toBe(false);
    process.kill(pid, 'SIGCONT');
    stopped = false;
    await eventually(() => recoveries() === 1, 'recovered after SIGCONT');
    expect(store.healthy).toBe(true);
    const after = await session.reserve(ref, limits, 0);
    expect(after).toMatchObject({ ok: true });
    expect('degraded' in after && after.degraded).toBeFalsy();
    expect(failures).toHaveLength(1);
  }, 30_000);
});
