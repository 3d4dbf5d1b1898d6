/**
 * Redis going away mid-burst, and coming back: three managers on one
 * redis-server, each on its own RedisStore (as in its own process), bursts
 * of 150 requests through the real SDK on the in-process simulator. The
 * outage is a hung server (SIGSTOP), a crash and restart (SIGKILL), or
 * `CLIENT PAUSE`. Checked: every request settles, `failMode` is honoured,
 * one `store:error` and one `store:recovered` per manager and outage, and a
 * key revoked during the outage is out everywhere once Redis is back — also
 * for a manager started afterwards. Real time with Redis: bounds are
 * generous, the assertions are counts.
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator, simulatorFetch } from '../../src/testing';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite, serverPid } from '../support/redis';
import { outcome } from '../support/store-replica';
import { eventually } from '../support/time';

const redis = redisForSuite('Redis away mid-burst');
const MODEL = 'gpt-4.1';
const BURST = 150;
/**
 * How long `CLIENT PAUSE` holds Redis: a set time (the pausing connection is
 * paused too, `CLIENT UNPAUSE` from another waits for the pause's end), waited
 * out in full by each of its two tests. It must outlast the burst sent during
 * it, which ends within the store's 250 ms `timeoutMs` plus the time to serve
 * 150 requests: 0.6 s measured at load 4.5 on 2 cores (the pause had 4.4 s of
 * its 5 s left when the test was done with it). 3 s: five times that.
 */
const PAUSE_MS = 3_000;
const body = () => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 4 });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

type Outage = 'SIGSTOP' | 'SIGKILL' | 'CLIENT PAUSE';

/** Takes Redis away; the returned function brings it back. */
async function takeAway(kind: Outage): Promise<() => Promise<void>> {
  if (kind === 'SIGKILL') {
    await redis.server.stop();
    return () => redis.server.start();
  }
  if (kind === 'SIGSTOP') {
    const pid = await serverPid(redis.server.url);
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    const resume = async () => {
      if (!resumed) process.kill(pid, 'SIGCONT');
      resumed = true;
    };
    cleanups.push(resume);
    return resume;
  }
  // Paused for a set time (PAUSE_MS), long enough for a burst on a loaded machine.
  const admin = new Redis(redis.server.url);
  await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
  admin.disconnect();
  const until = Date.now() + PAUSE_MS;
  return () => new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
}

/** Two keys on a simulator; `revoke()` makes every later request with the first answer 401, as a key revoked at the provider. */
function upstream(name: string) {
  const keys = [fakeKey(`${name}-a`), fakeKey(`${name}-b`)];
  const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: keys.map((key) => ({ key })), models: [MODEL] }] });
  const served = simulatorFetch(sim);
  let revoked = false;
  let sentRevoked = 0;
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const auth = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get('authorization') ?? '';
    if (revoked && auth.endsWith(keys[0]!)) {
      sentRevoked++;
      return new Response(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } }), {
        status: 401,
        headers: { 'content-type': 'application/json' },
      });
    }
    return served(input, init);
  };
  const options: Omit<KeyManagerOptions, 'store'> = {
    providers: { sim: { baseURL: sim.baseURL('sim'), keys: keys.map((key, i) => ({ key, id: `k${i}` })), models: [MODEL], requests: { limit: 100_000, periodMs: 60_000 } } },
    fetch,
    keySelection: 'round-robin',
    deadlineMs: 8_000,
  };
  return { options, revoke: () => (revoked = true), sentRevoked: () => sentRevoked };
}

async function replica(prefix: string, options: Omit<KeyManagerOptions, 'store'>, failMode: 'open' | 'closed') {
  const store = new RedisStore({ url: redis.server.url, prefix, retryMs: 50, timeoutMs: 250, failMode });
  await store.ready();
  const manager = new KeyManager({ ...options, store });
  cleanups.unshift(async () => {
    await manager.close();
    await store.close();
  });
  return {
    manager,
    errors: record(manager, 'store:error'),
    recovered: record(manager, 'store:recovered'),
    client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
  };
}

/** Three replicas, started one after another. */
async function replicasOf(prefix: string, options: Omit<KeyManagerOptions, 'store'>, failMode: 'open' | 'closed') {
  const made: Awaited<ReturnType<typeof replica>>[] = [];
  for (let i = 0; i < 3; i++) made.push(await replica(prefix, options, failMode));
  return made;
}

/** Three replicas on a fresh prefix against their own upstream, and a burst across them (each request's outcome). */
async function burstSetup(kind: string, failMode: 'open' | 'closed') {
  const up = upstream(`${failMode}-${kind.replace(' ', '-')}`);
  const prefix = `away-${failMode}:${randomUUID()}:`;
  const replicas = await replicasOf(prefix, up.options, failMode);
  const burst = () => Promise.all(Array.from({ length: BURST }, (_, i) => outcome(replicas[i % 3]!.client.chat.completions.create(body()))));
  return { up, prefix, replicas, burst };
}

const statusOf = (manager: KeyManager, id: string) => manager.stats().providers.sim!.keys.find((k) => k.id === id)?.status;

describe.skipIf(!redis.available)('Redis away mid-burst, then back', () => {
  for (const kind of ['SIGSTOP', 'SIGKILL', 'CLIENT PAUSE'] as const) {
    test(`${kind}, failing open: the burst is served, one store:error and one store:recovered each, a key revoked meanwhile is out everywhere after`, async () => {
      const { up, prefix, replicas, burst } = await burstSetup(kind, 'open');
      expect(await burst()).toEqual(Array(BURST).fill('ok'));

      const back = await takeAway(kind);
      up.revoke();
      // Every request settles, on each replica's own state; the revoked key's 401s fail over to the other.
      expect(await burst()).toEqual(Array(BURST).fill('ok'));
      for (const r of replicas) await eventually(() => r.errors.length >= 1, 'store:error');
      for (const r of replicas) expect(statusOf(r.manager, 'k0')).toBe('disabled');
      await back();
      for (const r of replicas) await eventually(() => r.recovered.length === 1, 'store:recovered');
      expect(await burst()).toEqual(Array(BURST).fill('ok'));
      for (const r of replicas) expect({ errors: r.errors.length, recovered: r.recovered.length, k0: statusOf(r.manager, 'k0') }).toEqual({ errors: 1, recovered: 1, k0: 'disabled' });

      // A manager started after the outage never sends with the key revoked during it.
      const sentBefore = up.sentRevoked();
      const fresh = await replica(prefix, up.options, 'open');
      expect(await Promise.all(Array.from({ length: 20 }, () => outcome(fresh.client.chat.completions.create(body()))))).toEqual(Array(20).fill('ok'));
      expect(up.sentRevoked()).toBe(sentBefore);
      expect(statusOf(fresh.manager, 'k0')).toBe('disabled');
    }, 90_000);

    test(`${kind}, failing closed: every request of the burst settles with store_unavailable, once per manager; served again after`, async () => {
      const { replicas, burst } = await burstSetup(kind, 'closed');
      expect(await burst()).toEqual(Array(BURST).fill('ok'));

      const back = await takeAway(kind);
      const during = await burst();
      expect(during).toEqual(Array(BURST).fill('store_unavailable'));
      for (const r of replicas) expect(r.errors.map((e) => e.failMode)).toEqual(['closed']);
      await back();
      for (const r of replicas) await eventually(() => r.recovered.length === 1, 'store:recovered');
      expect(await burst()).toEqual(Array(BURST).fill('ok'));
      for (const r of replicas) expect({ errors: r.errors.length, recovered: r.recovered.length }).toEqual({ errors: 1, recovered: 1 });
    }, 90_000);
  }
});
