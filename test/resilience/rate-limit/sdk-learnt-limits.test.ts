/**
 * Issue 11, "learnt periods" and "limits only stated by headers", through the
 * real `openai` SDK: nothing is configured, every limit comes from the
 * upstream's headers. Upstreams whose windows reset every 3 s (the
 * simulator), every minute (a fixed window) and per day for requests with a
 * per-minute tokens bucket (Groq's shape). Deterministic: the fake clock
 * moves only between steps, and each step waits for real progress to stop;
 * the figures are counts.
 *
 * The upstreams are keyplex's `fetch` option (the simulator's
 * `simulatorFetch`, or a function of the request's key), not msw: a thousand
 * requests and more per test, and msw's interception was most of each one's
 * cost (this file took 12–18 s; what is asserted is keyplex's pacing, the same
 * whichever `fetch` answers).
 */
import type OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { keyplex } from '../../../src/index';
import { ProviderSimulator, simulatorFetch } from '../../../src/testing';
import { formatDuration, TokenBucket } from '../../../src/testing/rate-window';
import { chatReply, errorReply, keyRing, upstreamFetch, type KeyRing } from '../../support/upstream';
import '../../support/setup';
import { managedClients } from '../../support/manage';
import { fakeClock, onLaterTurn, realTurn } from '../../support/time';

const BASE = 'https://api.learn.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 100 };
const MINUTE = 60_000;
const DAY = 86_400_000;

const manage = managedClients();

/** Yields on the real event loop until `progress()` has not moved for a while: the fake clock stands still meanwhile. */
async function quiet(progress: () => number): Promise<void> {
  let last = progress();
  let still = 0;
  while (still < 30) {
    await realTurn();
    const now = progress();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

/**
 * `workers` callers each send one request after another for `horizonMs` of
 * simulated time (closed loop: always more demand than capacity), the clock
 * moving `stepMs` at a time. Returns the app-visible outcomes.
 */
async function drive(client: OpenAI, progress: () => number, options: { workers: number; horizonMs: number; stepMs: number }) {
  const start = Date.now();
  let ok = 0;
  let failed = 0;
  let running = 0;
  const worker = async () => {
    running++;
    while (Date.now() - start < options.horizonMs) {
      try {
        await client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 10 * DAY }));
        ok++;
      } catch {
        // No test expects a failure: the caller stops, so that requests refused before anything waits (a regression)
        // fail the test on its count instead of spinning without the clock moving.
        failed++;
        break;
      }
    }
    running--;
  };
  const all = Array.from({ length: options.workers }, worker);
  const moved = () => progress() + ok + failed;
  await quiet(moved);
  while (Date.now() - start < options.horizonMs) {
    await vi.advanceTimersByTimeAsync(options.stepMs);
    await quiet(moved);
  }
  // The requests already waiting finish (they are past the horizon: not counted as capacity used).
  while (running > 0) {
    await vi.advanceTimersByTimeAsync(options.stepMs);
    await quiet(moved);
  }
  await Promise.all(all);
  return { ok, failed };
}

/** Upstream 429s per key id. */
function perKey(ring: KeyRing, rejected: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ring.keys) out[k.id] = rejected.filter((id) => id === k.id).length;
  return out;
}

/** A `fetch` (upstreamFetch at BASE) answering each request with `reply(the id of the key it was sent with)`; counts the requests. */
function keyedUpstream(ring: KeyRing, reply: (id: string) => Response): { fetch: typeof globalThis.fetch; calls: () => number } {
  const { fetch, seen } = upstreamFetch({ [BASE]: (call) => reply(ring.idOf(call.key)) });
  return { fetch, calls: () => seen[BASE]!.length };
}

/** A fixed-window upstream: `limit` requests per key in each `periodMs` from `t0`; OpenAI-style headers; 429 above. */
function fixedWindowUpstream(ring: KeyRing, limit: number, periodMs: number, horizonEnd: () => number) {
  const t0 = Date.now();
  const counts = new Map<string, number>();
  const rejected: string[] = [];
  let acceptedInHorizon = 0;
  const upstream = keyedUpstream(ring, (id) => {
    const now = Date.now();
    const window = Math.floor((now - t0) / periodMs);
    const slot = `${id}#${window}`;
    const used = counts.get(slot) ?? 0;
    const resetMs = t0 + (window + 1) * periodMs - now;
    const headers = (remaining: number) => ({
      'x-ratelimit-limit-requests': String(limit),
      'x-ratelimit-remaining-requests': String(remaining),
      'x-ratelimit-reset-requests': formatDuration(resetMs),
    });
    if (used >= limit) {
      rejected.push(id);
      return errorReply(429, 'rate_limit_exceeded', { ...headers(0), 'retry-after-ms': String(resetMs) });
    }
    counts.set(slot, used + 1);
    if (now < horizonEnd()) acceptedInHorizon++;
    return chatReply('gpt-4.1', 'hello', {}, { headers: headers(limit - used - 1) });
  });
  return { ...upstream, rejected, accepted: () => acceptedInHorizon };
}

describe('limits only stated by headers, periods learnt from the resets', () => {
  test('a 3 s window (the simulator, 20 per key per 3 s, 3 keys): ≥ 95% of the capacity, 0 app errors, at most one upstream 429 per key', async () => {
    fakeClock();
    const keys = ['sim-a', 'sim-b', 'sim-c'].map((id) => `fake-${id}-000000000000000001`);
    const sim = new ProviderSimulator({
      rateWindowMs: 3_000,
      providers: [{ id: 'gw', keys: keys.map((key) => ({ key, rpm: 20 })), models: ['gpt-4.1'] }],
    });
    const { manager, client } = manage({ providers: { gw: { baseURL: sim.baseURL('gw'), keys } }, fetch: onLaterTurn(simulatorFetch(sim)) });
    const horizonMs = 60_000;
    const start = Date.now();
    let inHorizon = 0;
    const keyTallies = () => Object.values(sim.tallies().gw?.keys ?? {});
    const result = await drive(
      client,
      () => {
        if (Date.now() - start < horizonMs) inHorizon = keyTallies().reduce((n, k) => n + k.successes, 0);
        return keyTallies().reduce((n, k) => n + k.requests, 0);
      },
      { workers: 40, horizonMs, stepMs: 100 },
    );

    // A bucket of 20 per 3 s per key starts full: 20 + 20 × 60 s / 3 s per key. Learning the period costs
    // about 15 requests per key at the start (a constant: 93% of a 30 s horizon, 96% of 60 s).
    const capacity = 3 * (20 + 20 * (horizonMs / 3_000));
    const rejectedPerKey = keyTallies().map((k) => k.rateLimited);
    expect(result.failed).toBe(0);
    expect(Math.max(...rejectedPerKey)).toBeLessThanOrEqual(1);
    console.log(`3 s window: ${inHorizon} of ${capacity} (${((100 * inHorizon) / capacity).toFixed(1)}%), upstream 429s ${JSON.stringify(rejectedPerKey)}`);
    expect(inHorizon / capacity).toBeGreaterThanOrEqual(0.95);
    // The period was learnt, not assumed to be a minute.
    for (const key of manager.stats().providers.gw!.keys) expect(key.limits.requestsPeriodMs).toBeLessThanOrEqual(3_300);
  }, 120_000);

  test('a fixed window of a minute (30 per key, 3 keys): ≥ 95% of the capacity, 0 app errors, at most one upstream 429 per key', async () => {
    fakeClock();
    const ring = keyRing('a', 'b', 'c');
    const horizonMs = 5 * MINUTE;
    const start = Date.now();
    const upstream = fixedWindowUpstream(ring, 30, MINUTE, () => start + horizonMs);
    const { client } = manage({ providers: { learn: { baseURL: BASE, keys: ring.keys } }, fetch: upstream.fetch });
    const result = await drive(client, upstream.calls, { workers: 40, horizonMs, stepMs: 1_000 });

    const capacity = 3 * 30 * (horizonMs / MINUTE);
    expect(result.failed).toBe(0);
    expect(Math.max(...Object.values(perKey(ring, upstream.rejected)))).toBeLessThanOrEqual(1);
    console.log(`minute window: ${upstream.accepted()} of ${capacity} (${((100 * upstream.accepted()) / capacity).toFixed(1)}%), upstream 429s ${JSON.stringify(perKey(ring, upstream.rejected))}`);
    expect(upstream.accepted() / capacity).toBeGreaterThanOrEqual(0.95);
  }, 120_000);

  test("Groq's shape, requests per day + tokens per minute (buckets; 3 keys): the day and the minute both learnt, ≥ 95% of the tokens capacity, 0 app errors, at most one upstream 429 per key", async () => {
    fakeClock();
    const ring = keyRing('a', 'b', 'c');
    const horizonMs = 8 * MINUTE;
    const start = Date.now();
    // 100 tokens a request (10 in, 90 out; counted as max_tokens 100 when it arrives, like OpenAI); 3 000 tokens a minute = 30 requests a minute; 400 requests a day.
    const buckets = new Map(ring.keys.map((k) => [k.id, { requests: new TokenBucket(400, DAY), tokens: new TokenBucket(3_000, MINUTE) }]));
    const rejected: string[] = [];
    let accepted = 0;
    const upstream = keyedUpstream(ring, (id) => {
      const now = Date.now();
      const b = buckets.get(id)!;
      const headers = () => ({
        'x-ratelimit-limit-requests': '400',
        'x-ratelimit-remaining-requests': String(b.requests.remaining(now)),
        'x-ratelimit-reset-requests': formatDuration(b.requests.resetMs(now)),
        'x-ratelimit-limit-tokens': '3000',
        'x-ratelimit-remaining-tokens': String(b.tokens.remaining(now)),
        'x-ratelimit-reset-tokens': formatDuration(b.tokens.resetMs(now)),
      });
      const wait = Math.max(b.requests.waitMs(1, now), b.tokens.waitMs(100, now));
      if (wait > 0) {
        rejected.push(id);
        return errorReply(429, 'rate_limit_exceeded', { ...headers(), 'retry-after': String(Math.ceil(wait / 1000)) });
      }
      b.requests.take(1, now);
      b.tokens.take(100, now);
      if (now < start + horizonMs) accepted++;
      return chatReply('gpt-4.1', 'hello', { prompt: 10, completion: 90 }, { headers: headers() });
    });
    const { manager, client } = manage({ providers: { groq: { baseURL: BASE, keys: ring.keys } }, fetch: upstream.fetch });
    const result = await drive(client, upstream.calls, { workers: 40, horizonMs, stepMs: 1_000 });

    // The tokens bucket binds (30 a minute, full at the start); the day's 400 requests are not reached.
    // Learning costs about 9 requests per key at the start (94% of a 4-minute horizon, 96.7% of 8).
    const capacity = 3 * (30 + 30 * (horizonMs / MINUTE));
    expect(result.failed).toBe(0);
    expect(Math.max(...Object.values(perKey(ring, rejected)))).toBeLessThanOrEqual(1);
    console.log(`groq shape: ${accepted} of ${capacity} (${((100 * accepted) / capacity).toFixed(1)}%), upstream 429s ${JSON.stringify(perKey(ring, rejected))}`);
    expect(accepted / capacity).toBeGreaterThanOrEqual(0.95);
    for (const key of manager.stats().providers.groq!.keys) {
      expect(key.limits.requestsPeriodMs).toBeGreaterThanOrEqual(DAY / 2);
      expect(key.limits.tokensPeriodMs).toBeLessThanOrEqual(2 * MINUTE);
    }
  }, 120_000);
});

describe('a configured window beside the provider\'s own of the same period', () => {
  test('rpm 120 configured, the provider\'s bucket lowered from 60 to 20 a minute, then raised back: the minute after, 60 served (22 before: its remaining capped the configured window, which does not refill), 0 upstream 429s', async () => {
    fakeClock();
    const t0 = Date.now();
    const limitAt = (now: number) => (now - t0 >= 3 * MINUTE && now - t0 < 8 * MINUTE ? 20 : 60);
    // An OpenAI-style token bucket: `limit` a minute, refilled continuously; the reset is the time to refill what was used
    // (seconds with 3 decimals, `57.312s`).
    let level = 60;
    let last = t0;
    const served: number[] = [];
    const rejected: number[] = [];
    const fetch = (async () => {
      const now = Date.now();
      const limit = limitAt(now);
      level = Math.min(limit, level + ((now - last) * limit) / MINUTE);
      last = now;
      const ok = level >= 1;
      if (ok) level--;
      (ok ? served : rejected).push(now);
      const headers = {
        'x-ratelimit-limit-requests': String(limit),
        'x-ratelimit-remaining-requests': String(Math.floor(level)),
        'x-ratelimit-reset-requests': `${Math.max(0.001, ((limit - level) * 60) / limit).toFixed(3)}s`,
      };
      return ok ? chatReply('gpt-4.1', 'hello', {}, { headers }) : errorReply(429, 'rate_limit_exceeded', headers);
    }) as typeof globalThis.fetch;
    const { client } = manage({ providers: { p: { baseURL: BASE, keys: keyRing('k').keys, models: ['gpt-4.1'], rpm: 120 } }, fetch });

    // Two requests a second for 10 minutes, each with 30 s to be served: 60 a minute for 3 minutes, 20 for 5, then 60 again.
    const requests: Promise<unknown>[] = [];
    for (let tick = 0; tick < 20 * 60; tick++) {
      requests.push(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 30_000 })).catch(() => undefined));
      await vi.advanceTimersByTimeAsync(500);
    }
    await vi.advanceTimersByTimeAsync(30_000);
    await Promise.all(requests);

    const inMinute = (m: number) => served.filter((t) => t - t0 >= m * MINUTE && t - t0 < (m + 1) * MINUTE).length;
    expect(rejected).toEqual([]);
    expect([1, 2].map(inMinute)).toEqual([60, 60]);
    expect([4, 5, 6, 7].map(inMinute).every((n) => n >= 19 && n <= 20)).toBe(true);
    expect(inMinute(8)).toBeGreaterThanOrEqual(57);
    expect(inMinute(9)).toBeGreaterThanOrEqual(57);
  });
});
