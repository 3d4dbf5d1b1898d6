/**
 * Circuits judge outcomes in the order their calls went through
 * (docs/resilience.md, "Circuit breakers"): a burst whose failures answer at
 * once, before its slower successes, must not open a circuit, while a
 * deployment that fails fast opens as fast as it always did, and one that
 * hangs some calls and fails the rest opens within a bound tied to how long
 * its successes take. Simulator in-process, fake clock: every count is exact.
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, type KeyManagerOptions } from '../../../src/index';
import { ProviderSimulator, simulatorFetch, type FaultOptions } from '../../../src/testing/index';
import { fakeKey } from '../../support/fake-keys';
import { fakeClock } from '../../support/time';

afterEach(() => {
  vi.useRealTimers();
});

const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 8 };

/**
 * Providers (one key each) serving gpt-4.1 in `latency`, each with `faults`;
 * keyplex with its default circuits unless `options` say otherwise. Every
 * circuit transition is recorded as `ms scope provider to reason`.
 */
function setup(ids: string[], faults: FaultOptions[], latency: { medianMs: number; p99Ms: number }, options: Partial<KeyManagerOptions> = {}) {
  fakeClock();
  const t0 = Date.now();
  const keys = Object.fromEntries(ids.map((id) => [id, [fakeKey(id)]]));
  const sim = new ProviderSimulator({
    now: () => Date.now() - t0,
    providers: ids.map((id) => ({ id, keys: keys[id]!, models: ['gpt-4.1'], latency, faults })),
  });
  const manager = new KeyManager({
    providers: Object.fromEntries(ids.map((id) => [id, { baseURL: sim.baseURL(id), keys: keys[id]! }])),
    fetch: simulatorFetch(sim),
    ...options,
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const circuits: string[] = [];
  for (const name of ['circuit:open', 'circuit:half-open', 'circuit:close'] as const) {
    manager.on(name, (e) => void circuits.push(`${Date.now() - t0} ${e.scope} ${e.provider} ${e.to} ${e.reason}`));
  }
  const outcomes: string[] = [];
  /** Sends `n` requests at once; their outcomes go to `outcomes` (`ok` or keyplex's error code). */
  function burst(n: number): void {
    for (let i = 0; i < n; i++) {
      client.chat.completions.create(BODY).then(
        () => void outcomes.push('ok'),
        (error: unknown) => void outcomes.push(getKeyplexDetails(error)?.code ?? 'other'),
      );
    }
  }
  const upstream = () => ids.reduce((sum, id) => sum + (sim.tallies()[id]?.requests ?? 0), 0);
  return { t0, sim, manager, circuits, outcomes, burst, upstream };
}

test('a burst of 600 requests to three deployments that fail 20% of calls at once and answer the rest in 200-800 ms: no circuit opens and every request is served', async () => {
  const { manager, circuits, outcomes, burst } = setup(['a', 'b', 'c'], [{ kind: 'server_error', probability: 0.2 }], { medianMs: 400, p99Ms: 800 }, { deadlineMs: 10_000 });

  burst(600);
  await vi.advanceTimersByTimeAsync(700_000);

  // Before: the fast 500s came back before any success, five in a row opened every circuit, and 367 of 600 failed.
  expect(outcomes).toHaveLength(600);
  expect(circuits).toEqual([]);
  expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
  await manager.close();
});

/** No retries; every request goes at once (a hanging first call does not hold the key's others as the probe of its limits). */
const OUTAGE_OPTIONS: Partial<KeyManagerOptions> = { retry: { maxAttempts: 1 }, rateLimiting: { coldStart: 'open' } };

/** Requests at 100 a second (ten every 100 ms) for `ms` of fake time, then the clock runs on until `settleMs`. */
async function steady(burst: (n: number) => void, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    burst(10);
    await vi.advanceTimersByTimeAsync(100);
  }
}

test('a deployment that fails every call at once opens at its fifth failure, as before: one request at a time, and 20 at once', async () => {
  // A deadline of 1 s: with every circuit open, a request fails at once (no_key_available), sending nothing.
  const { manager, circuits, outcomes, burst, upstream } = setup(['a'], [{ kind: 'server_error' }], { medianMs: 300, p99Ms: 300 }, { retry: { maxAttempts: 1 }, deadlineMs: 1_000 });

  for (let i = 0; i < 6; i++) {
    burst(1);
    await vi.advanceTimersByTimeAsync(0);
  }
  expect(outcomes).toEqual(['upstream_error', 'upstream_error', 'upstream_error', 'upstream_error', 'upstream_error', 'no_key_available']);
  expect(upstream()).toBe(5);
  expect(circuits).toEqual(['0 deployment a open failures', '0 key a open failures']);
  await manager.close();

  const again = setup(['a'], [{ kind: 'server_error' }], { medianMs: 300, p99Ms: 300 }, { retry: { maxAttempts: 1 }, deadlineMs: 1_000 });
  again.burst(20);
  await vi.advanceTimersByTimeAsync(0);
  // Open in the same millisecond: nothing held (each failure came after the calls before it had answered).
  expect(again.circuits).toEqual(['0 deployment a open failures', '0 key a open failures']);
  expect(again.outcomes.filter((o) => o === 'upstream_error')).toHaveLength(again.upstream());
  await again.manager.close();
});

test('a provider that hangs half its calls and fails the rest at once, from the start: its circuits open within two 5 s holds (no success seen yet)', async () => {
  const { t0, manager, circuits, burst } = setup(['a'], [{ kind: 'hang', probability: 0.5 }, { kind: 'server_error' }], { medianMs: 300, p99Ms: 300 }, OUTAGE_OPTIONS);

  await steady(burst, 12_000);

  // Before: open at 0 ms (its first five 500s). Now at 5000 ms: the first hold lets the hanging calls go.
  const opened = circuits.filter((c) => c.includes(' open '));
  expect(opened.map((c) => c.split(' ').slice(1).join(' '))).toEqual(['deployment a open failures', 'key a open failures']);
  expect(Number(opened[0]!.split(' ')[0])).toBeLessThanOrEqual(2 * 5_000);
  await manager.close();
  // Nothing left running: the hanging calls ended, no hold timer.
  expect(vi.getTimerCount()).toBe(0);
  void t0;
});

test('a provider whose 300 ms successes give way to hanging half its calls and failing the rest: its circuits open within two 1 s holds of the outage', async () => {
  const faults: FaultOptions[] = [{ kind: 'hang', probability: 0.5, fromMs: 2_000 }, { kind: 'server_error', fromMs: 2_000 }];
  const { manager, circuits, burst } = setup(['a'], faults, { medianMs: 300, p99Ms: 300 }, OUTAGE_OPTIONS);

  await steady(burst, 6_000);

  // Before: open at 2000 ms. Now at 3000 ms: one hold (300 ms successes: at least 1 s) after the outage began.
  const opened = circuits.filter((c) => c.includes(' open '));
  expect(opened.map((c) => c.split(' ').slice(1).join(' '))).toEqual(['deployment a open failures', 'key a open failures']);
  expect(Number(opened[0]!.split(' ')[0])).toBeLessThanOrEqual(2_000 + 2 * 1_000);
  await manager.close();
});

/**
 * Provider a's first call hangs, its next four fail at once (requests sent
 * 1 ms apart, retries off): the four failures wait for the first call, which
 * ends as the test says. Five failures in a row open the circuits.
 */
async function hungThenFailures(options: Partial<KeyManagerOptions>, end: (controller: AbortController) => void) {
  const faults: FaultOptions[] = [{ kind: 'hang', requests: [0] }, { kind: 'server_error' }];
  const made = setup(['a'], faults, { medianMs: 300, p99Ms: 300 }, { ...OUTAGE_OPTIONS, ...options });
  const controller = new AbortController();
  const client = made.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const first = client.chat.completions.create(BODY, { signal: controller.signal }).then(
    () => 'ok',
    (e: unknown) => getKeyplexDetails(e)?.code ?? (e as Error).constructor.name,
  );
  for (let i = 0; i < 4; i++) {
    await vi.advanceTimersByTimeAsync(1);
    made.burst(1);
  }
  await vi.advanceTimersByTimeAsync(100);
  expect(made.circuits).toEqual([]);
  end(controller);
  await vi.advanceTimersByTimeAsync(1);
  return { ...made, first };
}

test('a call the caller aborts gives up its place at once: the failures behind it are judged then, not a hold later', async () => {
  const { manager, circuits, first, burst } = await hungThenFailures({}, (controller) => controller.abort());

  expect(await first).toBe('APIUserAbortError');
  // The four failures judged at the abort (105 ms): four in a row, one short of opening; a fifth opens it at once.
  expect(circuits).toEqual([]);
  burst(1);
  await vi.advanceTimersByTimeAsync(0);
  expect(circuits).toEqual(['105 deployment a open failures', '105 key a open failures']);
  await manager.close();
  expect(vi.getTimerCount()).toBe(0);
});

test('a call that times out (attempt timeout 2 s) is judged a failure in its place: five in a row open the circuits then', async () => {
  const { manager, circuits, first } = await hungThenFailures({ attemptTimeoutMs: 2_000 }, () => undefined);

  await vi.advanceTimersByTimeAsync(2_000);
  // Its timeout (keyplex's `upstream_error`) counts as a failure, before the four 500s: five in a row.
  expect(await first).toBe('upstream_error');
  expect(circuits).toEqual(['2000 deployment a open failures', '2000 key a open failures']);
  await manager.close();
  expect(vi.getTimerCount()).toBe(0);
});

test('close() and removing a key stop the hold timers: the held failures are judged then', async () => {
  const { manager, circuits, first } = await hungThenFailures({}, () => undefined);
  // Two hold timers: the deployment's circuit and the key's.
  const timers = vi.getTimerCount();

  manager.removeKey('a', manager.stats().providers.a!.keys[0]!.id);
  // The key's circuit judged its four failures (one short of opening) and stopped its timer.
  expect(vi.getTimerCount()).toBe(timers - 1);
  await manager.close();
  expect(await first).toBe('manager_closed');
  expect(circuits).toEqual([]);
  expect(vi.getTimerCount()).toBe(0);
});
