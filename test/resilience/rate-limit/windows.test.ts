import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ConfigError } from '../../../src/errors';
import { KeyLimiter, LimiterRegistry, type KeyLimiterOptions, type Reservation } from '../../../src/resilience/rate-limit';
import { MAX_COUNT_LAG_MS } from '../../../src/resilience/rate-limit/window';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const limiterOf = (options: KeyLimiterOptions = {}) => new KeyLimiter(options, () => Date.now());
const h = (init: Record<string, string>) => new Headers(init);

function reserve(limiter: KeyLimiter, tokens = 0): Reservation {
  const result = limiter.tryReserve(tokens);
  if (!result.ok) throw new Error(`expected a reservation, got a wait of ${result.waitMs} ms`);
  return result.reservation;
}

describe('ledger windows: at most `limit` in any period', () => {
  test('rpm 3: three fit at once, the fourth waits until the first leaves the window (answered + a minute)', () => {
    const limiter = limiterOf({ rpm: 3 });
    const first = reserve(limiter);
    reserve(limiter);
    reserve(limiter);
    vi.advanceTimersByTime(100);
    limiter.observe(h({}), first); // answered 100 ms after it was sent
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 60_000 });
    vi.advanceTimersByTime(59_999);
    expect(limiter.tryReserve(0).ok).toBe(false);
    vi.advanceTimersByTime(1);
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('an unanswered request is a debt: counted as of its send + the count lag, a period on', () => {
    const limiter = limiterOf({ rpm: 1 });
    reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 60_000 + MAX_COUNT_LAG_MS });
  });

  test('the burst: 4× the capacity offered at once gets exactly the capacity in the first period, never more', () => {
    const limiter = limiterOf({ rpm: 30 });
    const sent: number[] = [];
    const open: Reservation[] = [];
    for (let t = 0; t < 180_000; t += 50) {
      for (const r of open.splice(0)) limiter.observe(h({}), r);
      while (sent.length < 120) {
        const result = limiter.tryReserve(0);
        if (!result.ok) break;
        sent.push(Date.now());
        open.push(result.reservation);
      }
      vi.advanceTimersByTime(50);
    }
    const t0 = sent[0]!;
    for (const at of sent) {
      const inWindow = sent.filter((other) => other > at - 60_000 && other <= at).length;
      expect(inWindow).toBeLessThanOrEqual(30);
    }
    expect(sent.filter((at) => at < t0 + 60_000)).toHaveLength(30);
    expect(sent.filter((at) => at < t0 + 120_200)).toHaveLength(90);
  });

  test('tokens: the estimate is held, then replaced by the real count', () => {
    const limiter = limiterOf({ tpm: 1_000 });
    const r = reserve(limiter, 800);
    expect(limiter.tryReserve(300)).toMatchObject({ ok: false });
    limiter.reconcile(r, 100);
    expect(limiter.tryReserve(300).ok).toBe(true);
  });

  test('tokens above the limit never fit', () => {
    expect(limiterOf({ tpm: 100 }).tryReserve(101)).toEqual({ ok: false, waitMs: Infinity });
  });

  test('cancel gives the request back; refund gives the tokens back and keeps the request', () => {
    const limiter = limiterOf({ rpm: 1, tpm: 100 });
    limiter.cancel(reserve(limiter, 100));
    const r = reserve(limiter, 100);
    expect(limiter.refund(r)).toBe(true);
    expect(limiter.refund(r)).toBe(false);
    expect(limiter.tryReserve(0).ok).toBe(false);
    expect(limiter.headroom()).toBe(0);
  });
});

describe('hopeUntil: a wait past a deadline that replies to the requests in flight could shorten', () => {
  const second = { requests: { limit: 1, periodMs: 1_000 } };

  test('1 a second, one unanswered: hope until the deadline minus the period; none once a reply could no longer free it in time', () => {
    const limiter = limiterOf(second);
    const t0 = Date.now();
    reserve(limiter);
    // The estimate (sent + the count lag + the period) passes a deadline 1150 ms on; a reply by 150 ms frees it by then.
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_250 });
    expect(limiter.hopeUntil(0, t0 + 1_150)).toBe(t0 + 150);
    // A deadline within the period: a reply now frees the window only after it.
    expect(limiter.hopeUntil(0, t0 + 900)).toBe(-Infinity);
    vi.advanceTimersByTime(151);
    expect(limiter.hopeUntil(0, t0 + 1_150)).toBe(-Infinity);
  });

  test('answered, the window frees at the reply + the period for certain: no hope before it', () => {
    const limiter = limiterOf(second);
    const t0 = Date.now();
    const first = reserve(limiter);
    vi.advanceTimersByTime(100);
    limiter.observe(h({}), first);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_000 });
    expect(limiter.hopeUntil(0, t0 + 1_099)).toBe(-Infinity);
  });

  test("a 429's rest past the deadline: no hope, whatever the requests in flight", () => {
    const limiter = limiterOf(second);
    const t0 = Date.now();
    reserve(limiter);
    limiter.rateLimited(h({ 'retry-after-ms': '2000' }), 1_000);
    expect(limiter.hopeUntil(0, t0 + 1_150)).toBe(-Infinity);
  });

  test('tokens: the units needed leave by the deadline only if the request holding them is answered in time', () => {
    const limiter = limiterOf({ tokens: { limit: 100, periodMs: 1_000 } });
    const t0 = Date.now();
    reserve(limiter, 80);
    expect(limiter.tryReserve(50)).toEqual({ ok: false, waitMs: 1_250 });
    expect(limiter.hopeUntil(50, t0 + 1_200)).toBe(t0 + 200);
    // 20 tokens fit now: nothing stands in the way, so nothing to hope for.
    expect(limiter.hopeUntil(20, t0 + 1_200)).toBe(-Infinity);
  });

  test('two windows: hope lasts while a reply could still free both (the longer period decides)', () => {
    const limiter = limiterOf({ requests: [{ limit: 1, periodMs: 1_000 }, { limit: 1, periodMs: 2_000 }] });
    const t0 = Date.now();
    reserve(limiter);
    expect(limiter.hopeUntil(0, t0 + 2_100)).toBe(t0 + 100);
    expect(limiter.hopeUntil(0, t0 + 1_900)).toBe(-Infinity);
  });
});

describe('configured windows: capacity and period', () => {
  test.each<[string, KeyLimiterOptions, number]>([
    ['rpm', { rpm: 2 }, 60_000],
    ['rpd', { rpd: 2 }, 86_400_000],
    ['{ limit, periodMs }', { requests: { limit: 2, periodMs: 3_000 } }, 3_000],
  ])('%s: two fit, the third waits a period after the first was answered', (_name, options, periodMs) => {
    const limiter = limiterOf(options);
    const first = reserve(limiter);
    limiter.observe(h({}), first);
    reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: periodMs });
    expect(limiter.limits).toMatchObject({ rpm: 2, requestsPeriodMs: periodMs, source: 'config' });
  });

  test('rpm and rpd together: both hold', () => {
    const limiter = limiterOf({ rpm: 10, rpd: 3 });
    for (let i = 0; i < 3; i++) limiter.observe(h({}), reserve(limiter));
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 86_400_000 });
  });

  test.each([
    ['rpm', 0],
    ['rpd', -1],
    ['tpm', Number.NaN],
    ['tpd', '100'],
    ['requests', { limit: 5 }],
    ['requests', { limit: 5, periodMs: 10 }],
    ['tokens', [{ limit: 5, periodMs: 1_000, extra: 1 }]],
    ['adaptive', 'yes'],
  ])('%s: %j is rejected with a ConfigError naming the field', (field, value) => {
    const build = () => new KeyLimiter({ [field]: value } as KeyLimiterOptions);
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field: expect.stringContaining(field) }));
  });

  test('a wrong value is never echoed when it is a string (it may be a key)', () => {
    const secret = 'sk-proj-abcdefghijklmnopqrstuvwxyz012345';
    expect(() => new KeyLimiter({ rpm: secret as unknown as number })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('abcdefgh') }));
  });
});

describe('header snapshots apply as of the request the upstream counted', () => {
  test('a reply describing an early request does not free room taken by requests sent after it', () => {
    const limiter = limiterOf();
    // Learnt: 10 per minute. Then 10 sent at once; the first reply says 9 left (as of request 1).
    limiter.observe(h({ 'x-ratelimit-limit-requests': '10', 'x-ratelimit-remaining-requests': '10', 'x-ratelimit-reset-requests': '0s' }));
    const sent = Array.from({ length: 10 }, () => reserve(limiter));
    limiter.observe(h({ 'x-ratelimit-limit-requests': '10', 'x-ratelimit-remaining-requests': '9', 'x-ratelimit-reset-requests': '6s' }), sent[0]);
    expect(limiter.tryReserve(0).ok).toBe(false);
  });

  test('another client using the key: remaining below our own count caps us until the reset', () => {
    const limiter = limiterOf({ rpm: 10 });
    const r = reserve(limiter);
    limiter.observe(h({ 'x-ratelimit-remaining-requests': '1', 'x-ratelimit-reset-requests': '54s' }), r);
    reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 54_000 });
  });

  test('a reply observed without a reservation is taken as counted now', () => {
    const limiter = limiterOf({ rpm: 100 });
    limiter.observe(h({ 'x-ratelimit-remaining-requests': '25', 'x-ratelimit-reset-requests': '45s' }));
    expect(limiter.headroom()).toBeCloseTo(0.25, 9);
  });
});

describe('periods learnt from headers', () => {
  test('OpenAI (token bucket): 1 used of 10 000 with a 6 ms reset is a minute', () => {
    const limiter = limiterOf();
    limiter.observe(h({ 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': '9999', 'x-ratelimit-reset-requests': '6ms' }));
    expect(limiter.limits).toMatchObject({ rpm: 10_000, requestsPeriodMs: 60_000, source: 'headers' });
  });

  test('Groq: requests per day and tokens per minute on one key', () => {
    const limiter = limiterOf();
    limiter.observe(
      h({
        'x-ratelimit-limit-requests': '14400',
        'x-ratelimit-remaining-requests': '14399',
        'x-ratelimit-reset-requests': '6s',
        'x-ratelimit-limit-tokens': '6000',
        'x-ratelimit-remaining-tokens': '5940',
        'x-ratelimit-reset-tokens': '600ms',
      }),
    );
    expect(limiter.limits).toMatchObject({ rpm: 14_400, requestsPeriodMs: 86_400_000, tpm: 6_000 });
    // 60 used (remaining is rounded down, so counted as 59): 600 ms × 6 000 / 59 — a minute, on the safe side.
    expect(limiter.limits.tokensPeriodMs).toBeCloseTo(61_017, 0);
  });

  test('a gateway with a fixed 3 s window: 19 of 20 with reset 3s, then 18 with the same reset moment → 3 s', () => {
    const limiter = limiterOf();
    const a = reserve(limiter);
    const b = reserve(limiter);
    limiter.observe(h({ 'x-ratelimit-limit-requests': '20', 'x-ratelimit-remaining-requests': '19', 'x-ratelimit-reset-requests': '3s' }), a);
    vi.advanceTimersByTime(10);
    limiter.observe(h({ 'x-ratelimit-limit-requests': '20', 'x-ratelimit-remaining-requests': '18', 'x-ratelimit-reset-requests': '2.99s' }), b);
    expect(limiter.limits).toMatchObject({ rpm: 20, requestsPeriodMs: 3_000 });
  });

  test('240 requests against a 20-per-3-s upstream take ~36 s, not 12 minutes', () => {
    const limiter = limiterOf();
    let windowStart = Date.now();
    let used = 0;
    let done = 0;
    let over = 0;
    const start = Date.now();
    while (done < 240) {
      const now = Date.now();
      if (now - windowStart >= 3_000) {
        windowStart = now - ((now - windowStart) % 3_000);
        used = 0;
      }
      const result = limiter.tryReserve(0);
      if (!result.ok) {
        vi.advanceTimersByTime(Math.min(result.waitMs, 3_000 - (now - windowStart)) || 1);
        continue;
      }
      if (used >= 20) over++;
      used = Math.min(20, used + 1);
      done++;
      const reset = `${(3_000 - (now - windowStart)) / 1000}s`;
      limiter.observe(h({ 'x-ratelimit-limit-requests': '20', 'x-ratelimit-remaining-requests': String(20 - used), 'x-ratelimit-reset-requests': reset }), result.reservation);
    }
    expect(over).toBeLessThanOrEqual(1);
    expect(Date.now() - start).toBeLessThan(3_000 * (240 / 20) * 1.1 + 3_000);
  });
});

describe('429s: the rest and AIMD', () => {
  test('an Anthropic reset 40 s ahead rests the key 40 s (not a default)', () => {
    const limiter = limiterOf({ adaptive: false });
    const reset = new Date(Date.now() + 40_000).toISOString();
    const rest = limiter.rateLimited(h({ 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': reset }), 5_000);
    expect(rest.ms).toBe(40_000);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 40_000 });
  });

  test.each<[string, Record<string, string>]>([
    ['retry-after: 1e12', { 'retry-after': '1e12' }],
    ['retry-after-ms: 1e15', { 'retry-after-ms': '1e15' }],
    ['x-ratelimit-reset: 99999999h', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '99999999h' }],
    ['an HTTP date a year ahead', { 'retry-after': new Date(Date.now() + 365 * 86_400_000).toUTCString() }],
  ])('%s: the rest is capped at an hour and says so', (_name, headers) => {
    const limiter = limiterOf({ adaptive: false });
    expect(limiter.rateLimited(h(headers), 1_000)).toMatchObject({ ms: 3_600_000, capped: true });
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 3_600_000 });
  });

  test('a limit of 0.0001 is raised to 1 (capped), never parking the key for ever', () => {
    const limiter = limiterOf();
    const snapshot = limiter.observe(h({ 'x-ratelimit-limit-requests': '0.0001' }));
    expect(snapshot.capped).toBe(true);
    expect(limiter.limits.rpm).toBe(1);
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('a blip: four 429s with retry-after-ms 100 after steady traffic keep the key at its pace', () => {
    const limiter = limiterOf();
    // 5 req/s for a minute, all served.
    for (let i = 0; i < 300; i++) {
      const r = reserve(limiter);
      limiter.observe(h({}), r);
      limiter.succeeded();
      vi.advanceTimersByTime(200);
    }
    const inFlight = Array.from({ length: 4 }, () => reserve(limiter));
    for (const r of inFlight) limiter.rateLimited(h({ 'retry-after-ms': '100' }), 1_000, r);
    vi.advanceTimersByTime(100);
    let served = 0;
    for (let i = 0; i < 25; i++) {
      const result = limiter.tryReserve(0);
      if (result.ok) {
        served++;
        limiter.observe(h({}), result.reservation);
        limiter.succeeded();
      }
      vi.advanceTimersByTime(200);
    }
    expect(served).toBeGreaterThanOrEqual(23); // ≥ 90% of 5 req/s within 5 s
  });

  test('a real 429 never lowers the estimate below what the key just served', () => {
    const limiter = limiterOf();
    for (let i = 0; i < 120; i++) {
      limiter.observe(h({}), reserve(limiter));
      limiter.succeeded();
      vi.advanceTimersByTime(400);
    }
    limiter.rateLimited(h({ 'retry-after': '5' }), 1_000, reserve(limiter));
    expect(limiter.limits).toMatchObject({ source: 'adaptive' });
    expect(limiter.limits.rpm).toBeGreaterThanOrEqual(120);
  });

  test('forget() drops learnt limits, periods, rests and the AIMD estimate; configured limits stay', () => {
    const limiter = limiterOf({ tpm: 1_000 });
    limiter.observe(h({ 'x-ratelimit-limit-requests': '5', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '10m' }));
    limiter.rateLimited(h({ 'retry-after': '600' }), 1_000);
    limiter.forget();
    expect(limiter.limits).toMatchObject({ rpm: undefined, tpm: 1_000, source: 'config' });
    expect(limiter.tryReserve(0).ok).toBe(true);
  });
});

describe('LimiterRegistry: per-model windows and quota groups', () => {
  const scope = (s: 'key' | 'model', quotaGroup?: string) => ({ scope: s, quotaGroup, limits: { rpm: 1 } });

  test("scope 'model': each upstream model has its own windows", () => {
    const registry = new LimiterRegistry({}, () => Date.now());
    const mini = registry.limiterFor('openai', 'k1', 'gpt-4.1-mini', scope('model'));
    const big = registry.limiterFor('openai', 'k1', 'gpt-4.1', scope('model'));
    expect(mini).not.toBe(big);
    reserve(mini);
    expect(big.tryReserve(0).ok).toBe(true);
    expect(registry.limiterFor('openai', 'k1', 'gpt-4.1-mini', scope('model'))).toBe(mini);
  });

  test("scope 'key': one set of windows for every model", () => {
    const registry = new LimiterRegistry({}, () => Date.now());
    expect(registry.limiterFor('groq', 'k1', 'a', scope('key'))).toBe(registry.limiterFor('groq', 'k1', 'b', scope('key')));
  });

  test('a quota group: two keys share one window', () => {
    const registry = new LimiterRegistry({}, () => Date.now());
    const a = registry.limiterFor('openrouter', 'k1', 'x', scope('key', 'acct'));
    const b = registry.limiterFor('openrouter', 'k2', 'x', scope('key', 'acct'));
    expect(a).toBe(b);
    expect(LimiterRegistry.ref('openrouter', 'k1', 'x', scope('key', 'acct'))).toEqual(LimiterRegistry.ref('openrouter', 'k2', 'x', scope('key', 'acct')));
  });

  test('per-model limiters are bounded per key', () => {
    const registry = new LimiterRegistry({}, () => Date.now());
    for (let i = 0; i < 1_000; i++) registry.limiterFor('openai', 'k1', `m${i}`, scope('model'));
    expect(registry.limitersOf('openai', 'k1').length).toBeLessThanOrEqual(256);
  });

  test('forget reaches every model window of the key', () => {
    const registry = new LimiterRegistry({}, () => Date.now());
    const limiter = registry.limiterFor('openai', 'k1', 'm', { scope: 'model', limits: {} });
    limiter.rateLimited(h({ 'retry-after': '600' }), 0);
    registry.forget('openai', 'k1');
    expect(limiter.tryReserve(0).ok).toBe(true);
  });
});

describe('PeriodLearner and ledger bounds', () => {
  test('Anthropic resets in whole seconds: a token bucket is not mistaken for a fixed window', async () => {
    const { PeriodLearner } = await import('../../../src/resilience/rate-limit');
    const learner = new PeriodLearner();
    // 40 000 input tokens per minute: 100 tokens more move the reset 150 ms, lost in the rounding to the second.
    learner.update(40_000, 39_000, 2_000, 0);
    learner.update(40_000, 38_900, 2_000, 10);
    expect([learner.fixed, learner.bucket]).toEqual([false, true]);
    expect(learner.periodMs).toBeGreaterThanOrEqual(60_000);
  });

  test('a fixed window in whole seconds is still recognised', async () => {
    const { PeriodLearner } = await import('../../../src/resilience/rate-limit');
    const learner = new PeriodLearner();
    learner.update(20, 19, 3_000, 0);
    learner.update(20, 15, 3_000, 400);
    expect([learner.fixed, learner.periodMs]).toEqual([true, 3_000]);
  });

  test('unanswered requests are kept one by one up to a bound, and still counted', () => {
    const limiter = limiterOf({ rpm: 5_000 });
    for (let i = 0; i < 5_000; i++) reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 60_000 + MAX_COUNT_LAG_MS });
  });

  test('a tokens limit learnt after a request was sent is not credited by its reconciliation', () => {
    const limiter = limiterOf();
    const early = reserve(limiter, 500);
    limiter.observe(h({ 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '1000' }));
    limiter.reconcile(early, 100);
    expect(limiter.tryReserve(1_000).ok).toBe(true);
    expect(limiter.tryReserve(1).ok).toBe(false);
  });
});

describe('against a token-bucket upstream stating its limits (20 per 2 s), demand at twice the limit for 4 s', async () => {
  const { TokenBucket: UpstreamBucket, formatDuration, ceilMs } = await import('../../../src/testing/rate-window');

  test.each<[string, KeyLimiterOptions]>([
    ['configured (600 per minute) and stated in headers', { rpm: 600 }],
    ['stated in headers only', {}],
  ])('%s: 0 upstream 429s, ≥ 90% of the bucket’s capacity used', (_name, options) => {
    const limiter = limiterOf(options);
    const upstream = new UpstreamBucket(20, 2_000);
    const start = Date.now();
    let accepted = 0;
    let rejected = 0;
    for (let t = 0; t < 4_000; t += 10) {
      for (let i = 0; i < 5; i++) {
        const now = Date.now();
        const result = limiter.tryReserve(0);
        if (!result.ok) break;
        const reset = formatDuration(ceilMs(upstream.resetMs(now)));
        if (upstream.waitMs(1, now) > 0) {
          rejected++;
          limiter.rateLimited(h({ 'x-ratelimit-limit-requests': '20', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': reset }), 1_000, result.reservation);
          continue;
        }
        upstream.take(1, now);
        accepted++;
        const headers = { 'x-ratelimit-limit-requests': '20', 'x-ratelimit-remaining-requests': String(upstream.remaining(now)), 'x-ratelimit-reset-requests': formatDuration(ceilMs(upstream.resetMs(now))) };
        limiter.observe(h(headers), result.reservation);
      }
      vi.advanceTimersByTime(10);
    }
    const capacity = 20 + (20 * (Date.now() - start)) / 2_000;
    expect(rejected).toBe(0);
    expect(accepted / capacity).toBeGreaterThanOrEqual(0.9);
  });
});
