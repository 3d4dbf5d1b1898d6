/**
 * Managers sharing keys through a store behave like one (DESIGN.md §5), driven
 * through the real `openai` SDK against the provider simulator (msw). One
 * suite, two stores: two managers on one `MemoryStore`, and two managers on
 * two `RedisStore`s with the same prefix (as two replicas would be) on a real
 * `redis-server`.
 */
import OpenAI from 'openai';
import { http, HttpResponse } from 'msw';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, MemoryStore, type KeyManagerOptions, type StateStore } from '../../src/index';
import { ProviderSimulator, type SimProviderOptions } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { storePairKinds } from '../support/store-pairs';
import { record } from '../support/events';
import { eventually, fakeClock } from '../support/time';
import { useMsw } from '../support/scaffold';
import { reservingStore } from '../support/custom-store';

const MODEL = 'gpt-4.1-mini';
const server = useMsw();
const redis = redisForSuite('managers sharing a RedisStore');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  server.resetHandlers();
  vi.useRealTimers();
});

/** Two stores on one shared state (for memory: one store twice). */
const kinds = storePairKinds(redis, (store) => cleanups.push(() => store.close()));

function simulate(providers: SimProviderOptions[]): ProviderSimulator {
  const sim = new ProviderSimulator({ providers });
  server.use(...simulatorHandlers(sim));
  return sim;
}

const body = (content = 'hello') => ({ model: MODEL, messages: [{ role: 'user' as const, content }], max_tokens: 8 });

for (const kind of kinds) {
  describe.skipIf(!kind.available)(`two managers sharing ${kind.name}`, () => {
    /** Managers A and B on the same keys, sharing state through the kind's stores. */
    async function pair(sim: ProviderSimulator, options: (store: StateStore) => KeyManagerOptions) {
      const [storeA, storeB] = await kind.stores();
      const a = new KeyManager(options(storeA));
      const b = new KeyManager(options(storeB));
      cleanups.unshift(async () => {
        await a.close();
        await b.close();
      });
      const client = (m: KeyManager) => m.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
      return { a, b, clientA: client(a), clientB: client(b), sim };
    }

    test('a key limit holds for both together: rpm 4 admits 4 requests in all, not 4 each', async () => {
      const key = fakeKey('shared-rpm');
      const sim = simulate([{ id: 'sim', keys: [{ key }], models: [MODEL] }]);
      const { clientA, clientB } = await pair(sim, (store) => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 4 } },
        // The next refill is 15 s away: past this deadline, so the other four fail at once (no_key_available) instead of waiting.
        deadlineMs: 10_000,
        store,
      }));
      const outcomes = await Promise.all(
        [clientA, clientB, clientA, clientB, clientA, clientB, clientA, clientB].map((c) =>
          c.chat.completions.create(body()).then(
            () => 'ok',
            (error: unknown) => getKeyplexDetails(error)?.code ?? 'other',
          ),
        ),
      );
      expect(outcomes.filter((o) => o === 'ok')).toHaveLength(4);
      expect(outcomes.filter((o) => o === 'no_key_available')).toHaveLength(4);
      expect(sim.tallies().sim!.successes).toBe(4);
    });

    test('a key revoked (401) in A is never used by B once the disable arrived', async () => {
      const [revoked, good1, good2] = [fakeKey('revoked'), fakeKey('good1'), fakeKey('good2')];
      const sim = simulate([{ id: 'sim', keys: [{ key: revoked, revoked: true }, { key: good1 }, { key: good2 }], models: [MODEL] }]);
      const { a, b, clientA, clientB } = await pair(sim, (store) => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: revoked, id: 'revoked' }, good1, good2], models: [MODEL] } },
        keySelection: 'round-robin',
        store,
      }));
      const disabledInB = record(b, 'key:disabled');
      const disabledInA = record(a, 'key:disabled');
      // Round-robin starts at the first key: A's first attempt meets the 401.
      await clientA.chat.completions.create(body());
      expect(disabledInA).toEqual([{ provider: 'sim', keyId: 'revoked', reason: 'unauthorized' }]);
      await eventually(() => disabledInB.length === 1, "B's key:disabled");
      expect(disabledInB).toEqual([{ provider: 'sim', keyId: 'revoked', reason: 'unauthorized', remote: true }]);
      const seenBefore = sim.tallies().sim!.keys[revoked]!.requests;
      // Round-robin over three keys would send B's every third request to it.
      for (let i = 0; i < 12; i++) await clientB.chat.completions.create(body());
      expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(seenBefore);
      expect(b.stats().providers.sim!.keys.find((k) => k.id === 'revoked')?.status).toBe('disabled');
    });

    test('a key B added at run time takes on that A found it revoked: a burst of 100 sends nothing with it', async () => {
      const [revoked, good] = [fakeKey('revoked'), fakeKey('good')];
      const sim = simulate([{ id: 'sim', keys: [{ key: revoked, revoked: true }, { key: good }], models: [MODEL] }]);
      const { a, b, clientA, clientB } = await pair(sim, (store) => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: good, id: 'good' }], models: [MODEL] } },
        // Keys of unknown limits all take requests at once: no first-reply probe to stop the burst at one 401.
        rateLimiting: { coldStart: 'open' },
        store,
      }));
      a.addKey('sim', { key: revoked, id: 'revoked' });
      const disabledInA = record(a, 'key:disabled');
      await Promise.all(Array.from({ length: 10 }, () => clientA.chat.completions.create(body())));
      expect(disabledInA).toEqual([{ provider: 'sim', keyId: 'revoked', reason: 'unauthorized' }]);
      const disabledInB = record(b, 'key:disabled');
      const seenBefore = sim.tallies().sim!.keys[revoked]!.requests;

      b.addKey('sim', { key: revoked, id: 'revoked' });
      // Redis answers the load a round trip later; the memory store before addKey returns.
      await eventually(() => disabledInB.length === 1, "B's key:disabled");
      const outcomes = await Promise.allSettled(Array.from({ length: 100 }, () => clientB.chat.completions.create(body())));

      expect(disabledInB).toEqual([{ provider: 'sim', keyId: 'revoked', reason: 'unauthorized', remote: true }]);
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(seenBefore);
      expect(b.stats().providers.sim!.keys.find((k) => k.id === 'revoked')?.status).toBe('disabled');
    });

    test('enableKey in A puts the key back in B', async () => {
      const key = fakeKey('toggle');
      const sim = simulate([{ id: 'sim', keys: [{ key }], models: [MODEL] }]);
      const { a, b } = await pair(sim, (store) => ({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key, id: 'k' }], models: [MODEL] } }, store }));
      const recovered = record(b, 'key:recovered');
      a.disableKey('sim', 'k');
      await eventually(() => b.stats().providers.sim!.keys[0]!.status === 'disabled', 'disabled in B');
      a.enableKey('sim', 'k');
      await eventually(() => recovered.length === 1, "B's key:recovered");
      expect(recovered[0]).toEqual({ provider: 'sim', keyId: 'k', reason: 'manual', remote: true });
      expect(b.stats().providers.sim!.keys[0]!.status).toBe('active');
    });

    test("a 429 in A cools the key down in B, which sends its next requests with the other key", async () => {
      const [tight, spare] = [fakeKey('tight'), fakeKey('spare')];
      const sim = simulate([{ id: 'sim', keys: [{ key: tight }, { key: spare }], models: [MODEL] }]);
      // In front of the simulator: the provider answers `tight`'s requests 429 (retry in 30 s), which keyplex could not foresee.
      server.use(
        http.post(`${sim.baseURL('sim')}/chat/completions`, ({ request }) =>
          request.headers.get('authorization') === `Bearer ${tight}`
            ? HttpResponse.json({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }, { status: 429, headers: { 'retry-after-ms': '30000' } })
            : undefined,
        ),
      );
      const { a, b, clientA, clientB } = await pair(sim, (store) => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: tight, id: 'tight' }, { key: spare, id: 'spare' }], models: [MODEL] } },
        keySelection: 'round-robin',
        store,
      }));
      const cooledInB = record(b, 'key:cooldown');
      await clientA.chat.completions.create(body()); // tight: 429, cooled down; then spare
      expect(a.stats().providers.sim!.keys.find((k) => k.id === 'tight')?.status).toBe('cooling');
      await eventually(() => cooledInB.length === 1, "B's key:cooldown");
      expect(cooledInB[0]).toMatchObject({ provider: 'sim', keyId: 'tight', reason: 'rate_limit', remote: true });
      expect(cooledInB[0]!.retryAfterMs).toBeGreaterThan(25_000);
      const tightBefore = sim.tallies().sim!.keys[tight]!.requests;
      // Round-robin would send B's first request to `tight`.
      await clientB.chat.completions.create(body());
      await clientB.chat.completions.create(body());
      expect(sim.tallies().sim!.keys[tight]!.requests).toBe(tightBefore);
      expect(b.stats().providers.sim!.keys.find((k) => k.id === 'tight')?.status).toBe('cooling');
    });

    test("a deployment circuit that opens in A is open in B, whose requests go straight to the healthy provider", async () => {
      const [down, up] = [fakeKey('down'), fakeKey('up')];
      const sim = simulate([
        { id: 'down', keys: [{ key: down }], models: [MODEL], faults: [{ kind: 'outage' }] },
        { id: 'up', keys: [{ key: up }], models: [MODEL] },
      ]);
      const { a, b, clientA, clientB } = await pair(sim, (store) => ({
        providers: {
          down: { baseURL: sim.baseURL('down'), keys: [down], models: [MODEL] },
          up: { baseURL: sim.baseURL('up'), keys: [up], models: [MODEL] },
        },
        circuitBreaker: { deployment: { policy: { kind: 'consecutive', threshold: 2 }, openMs: 60_000 }, key: false },
        retry: { baseDelayMs: 0 },
        store,
      }));
      const opened = record(b, 'circuit:open');
      // Each request fails on `down` (503), then succeeds on `up`, until A's circuit for `down` opens.
      for (let i = 0; i < 5 && a.stats().deployments.find((d) => d.provider === 'down')?.circuit !== 'open'; i++) {
        await clientA.chat.completions.create(body());
      }
      expect(a.stats().deployments.find((d) => d.provider === 'down')?.circuit).toBe('open');
      await eventually(() => opened.length === 1, "B's circuit:open");
      expect(opened[0]).toMatchObject({ scope: 'deployment', provider: 'down', from: 'closed', to: 'open', reason: 'restored' });
      const before = sim.tallies().down!.requests;
      await clientB.chat.completions.create(body());
      expect(sim.tallies().down!.requests).toBe(before);
    });

    test('spend recorded in A counts against the budget in B', async () => {
      const key = fakeKey('spend');
      const sim = simulate([{ id: 'sim', keys: [{ key }], models: [MODEL] }]);
      const { a, b, clientA } = await pair(sim, (store) => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL] } },
        budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day' }],
        store,
      }));
      for (let i = 0; i < 3; i++) await clientA.chat.completions.create(body());
      const spentInA = a.stats().budgets[0]!.spentUsd;
      expect(spentInA).toBeGreaterThan(0);
      await eventually(() => Math.abs(b.stats().budgets[0]!.spentUsd - spentInA) < 1e-9, 'the same spend in B');
    });

    test('a manager that starts later takes on what is already shared: disabled keys and spend', async () => {
      const [revoked, good] = [fakeKey('late-revoked'), fakeKey('late-good')];
      const sim = simulate([{ id: 'sim', keys: [{ key: revoked, revoked: true }, { key: good }], models: [MODEL] }]);
      const [storeA, storeB] = await kind.stores();
      const options = (store: StateStore): KeyManagerOptions => ({
        providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: revoked, id: 'revoked' }, good], models: [MODEL] } },
        keySelection: 'round-robin',
        budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day' }],
        store,
      });
      const a = new KeyManager(options(storeA));
      cleanups.unshift(() => a.close());
      await a.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })).chat.completions.create(body());
      const spent = a.stats().budgets[0]!.spentUsd;
      // Writes travel asynchronously. A load on A's store is queued behind them (one connection, in order):
      // once it answers they have landed, however slow the machine (a fixed 50 ms pause was a guess).
      await eventually(() => a.stats().providers.sim!.keys[0]!.status === 'disabled', 'disabled in A');
      const probe = storeA.open({ change: () => {}, error: () => {}, recovered: () => {} });
      expect((await probe.load([])).keys.map((k) => k.status.disabled)).toContain('unauthorized');
      await probe.close();
      const b = new KeyManager(options(storeB));
      cleanups.unshift(() => b.close());
      await eventually(() => b.stats().providers.sim!.keys[0]!.status === 'disabled', 'disabled in B at start');
      await eventually(() => Math.abs(b.stats().budgets[0]!.spentUsd - spent) < 1e-9, 'the spend in B at start');
    });
  });
}

describe('a custom StateStore', () => {
  test('one that refuses every reservation without moving the windows cannot make a request spin: it ends at its deadline', async () => {
    // On the fake clock: how many tries fit in the deadline is then a count, the same on a loaded machine.
    fakeClock();
    const key = fakeKey('stubborn');
    const sim = simulate([{ id: 'sim', keys: [{ key }], models: [MODEL] }]);
    let reservations = 0;
    const stubborn = reservingStore(() => {
      reservations++;
      return { ok: false, waitMs: 0, requests: undefined, tokens: undefined };
    });
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 60 } }, deadlineMs: 200, store: stubborn });
    cleanups.push(() => manager.close());
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const pending = client.chat.completions.create(body()).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(200);
    const error = await pending;
    // keyplex answers 504: the SDK raises InternalServerError with keyplex's detail.
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(error)?.code).toBe('deadline_exceeded');
    expect(sim.tallies().sim!.requests).toBe(0);
    // Tries, then waits between tries: a few hundred at most in 200 ms, not a hot loop.
    expect(reservations).toBeGreaterThan(8);
    expect(reservations).toBeLessThan(500);
  });

  test('one whose reservation throws makes the request fail with store_unavailable (503), nothing sent', async () => {
    const key = fakeKey('throwing');
    const sim = simulate([{ id: 'sim', keys: [{ key }], models: [MODEL] }]);
    const throwing = reservingStore(() => Promise.reject(new Error('connection reset by the store')));
    const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [MODEL], rpm: 60 } }, store: throwing });
    cleanups.push(() => manager.close());
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const error = await client.chat.completions.create(body()).catch((e: unknown) => e);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'store_unavailable' });
    expect(getKeyplexDetails(error)?.message).toMatch(/connection reset by the store/);
    expect(sim.tallies().sim!.requests).toBe(0);
  });
});
