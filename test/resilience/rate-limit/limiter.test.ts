import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../../src/errors';
import { estimateTokens, KeyLimiter, type KeyLimiterOptions, type Reservation } from '../../../src/resilience/rate-limit';

/** A limiter on a hand-moved clock. */
function setup(options: KeyLimiterOptions = {}, start = 0) {
  const clock = { t: start };
  const limiter = new KeyLimiter(options, () => clock.t);
  return { clock, limiter };
}

/** Reserves and expects it to fit. */
function reserve(limiter: KeyLimiter, tokens = 0): Reservation {
  const result = limiter.tryReserve(tokens);
  if (!result.ok) throw new Error(`expected a reservation, got a wait of ${result.waitMs} ms`);
  return result.reservation;
}

/** Reserves `n` single requests and expects each to fit. */
function drain(limiter: KeyLimiter, n: number, tokens = 0): void {
  for (let i = 0; i < n; i++) reserve(limiter, tokens);
}

const h = (init: Record<string, string>) => new Headers(init);

describe('KeyLimiter: requests bucket', () => {
  test.each([
    [60, 1_000],
    [600, 100],
    [7, 8_572],
    [1, 60_000],
    [10_000, 6],
  ])('rpm %d: an empty bucket says the next request fits in exactly %d ms', (rpm, waitMs) => {
    const { limiter } = setup({ rpm });
    drain(limiter, rpm);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs });
  });

  test.each([[60], [600], [7], [10_000]])('rpm %d: trying again exactly waitMs later fits, 1 ms earlier does not', (rpm) => {
    const { clock, limiter } = setup({ rpm }, 1_000_000);
    drain(limiter, rpm);
    const first = limiter.tryReserve(0);
    if (first.ok) throw new Error('expected a wait');
    clock.t += first.waitMs - 1;
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1 });
    clock.t += 1;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('the bucket refills continuously at limit / 60 000 per ms', () => {
    const { clock, limiter } = setup({ rpm: 60 });
    drain(limiter, 60);
    clock.t = 5_000;
    drain(limiter, 5);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_000 });
  });

  test('refill stops at capacity', () => {
    const { clock, limiter } = setup({ rpm: 60 });
    drain(limiter, 60);
    clock.t = 600_000;
    drain(limiter, 60);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_000 });
  });

  test('the bucket starts full', () => {
    const { limiter } = setup({ rpm: 3 });
    drain(limiter, 3);
    expect(limiter.tryReserve(0).ok).toBe(false);
  });

  test('a clock that goes backwards is taken as standing still', () => {
    const { clock, limiter } = setup({ rpm: 60 }, 10_000);
    drain(limiter, 60);
    clock.t = 5_000;
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_000 });
  });

  test('a reservation records its tokens and time', () => {
    const { limiter } = setup({}, 42);
    expect(limiter.tryReserve(17)).toEqual({ ok: true, reservation: { tokens: 17, at: 42 } });
  });
});

describe('KeyLimiter: tokens bucket', () => {
  test('an empty tokens bucket says when the tokens fit', () => {
    const { limiter } = setup({ tpm: 6_000 });
    reserve(limiter, 6_000);
    expect(limiter.tryReserve(100)).toEqual({ ok: false, waitMs: 1_000 });
  });

  test('the wait is the longer of the two dimensions', () => {
    const { limiter } = setup({ rpm: 60, tpm: 6_000 });
    reserve(limiter, 5_900);
    expect(limiter.tryReserve(600)).toEqual({ ok: false, waitMs: 5_000 });
  });

  test.each([
    [1_000, 1_001],
    [1_000, 50_000],
    [1, 2],
  ])('tpm %d: %d tokens never fit, waitMs is Infinity', (tpm, tokens) => {
    const { limiter } = setup({ tpm });
    expect(limiter.tryReserve(tokens)).toEqual({ ok: false, waitMs: Infinity });
  });

  test('tokens equal to tpm fit a full bucket', () => {
    const { limiter } = setup({ tpm: 1_000 });
    expect(limiter.tryReserve(1_000).ok).toBe(true);
  });

  test.each([[-5], [Number.NaN]])('a token count of %d counts as 0', (tokens) => {
    const { limiter } = setup({ tpm: 1_000 });
    expect(limiter.tryReserve(tokens)).toMatchObject({ ok: true, reservation: { tokens: 0 } });
  });

  test('without a tpm, tokens never limit', () => {
    const { limiter } = setup({ rpm: 10 });
    expect(limiter.tryReserve(1e9).ok).toBe(true);
  });
});

describe('KeyLimiter: reconcile and refund', () => {
  test.each([
    ['down: the unused estimate is refunded', 800, 300, 0.7],
    ['up: the extra tokens are charged', 200, 500, 0.5],
    ['equal: nothing changes', 400, 400, 0.6],
  ])('reconcile %s', (_name, estimate, actual, headroom) => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, estimate);
    limiter.reconcile(reservation, actual);
    expect(limiter.headroom()).toBeCloseTo(headroom, 9);
  });

  test('a charge beyond what is left is a debt that later reservations wait out', () => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 1_000);
    limiter.reconcile(reservation, 1_500);
    // 500 in debt + 100 wanted, at 1 000 / 60 000 per ms.
    expect(limiter.tryReserve(100)).toEqual({ ok: false, waitMs: 36_000 });
  });

  test('a refund never fills the bucket above capacity', () => {
    const { clock, limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 800);
    clock.t = 60_000;
    limiter.reconcile(reservation, 0);
    expect(limiter.tryReserve(1_000).ok).toBe(true);
    expect(limiter.tryReserve(1).ok).toBe(false);
  });

  test('a reservation is settled once: a second reconcile is ignored', () => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 800);
    limiter.reconcile(reservation, 300);
    limiter.reconcile(reservation, 0);
    expect(limiter.headroom()).toBeCloseTo(0.7, 9);
  });

  test('refund gives the tokens back', () => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 400);
    limiter.refund(reservation);
    expect(limiter.headroom()).toBe(1);
  });

  test('refund keeps the request', () => {
    const { limiter } = setup({ rpm: 2 });
    limiter.refund(reserve(limiter, 10));
    reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 30_000 });
  });

  test('refund after reconcile is ignored', () => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 400);
    limiter.reconcile(reservation, 500);
    limiter.refund(reservation);
    expect(limiter.headroom()).toBeCloseTo(0.5, 9);
  });
});

describe('KeyLimiter: a shared store refused the reservation (cancel, mirror)', () => {
  test('cancel gives back the request and the tokens', () => {
    const { limiter } = setup({ rpm: 2, tpm: 1_000 });
    reserve(limiter, 100);
    limiter.cancel(reserve(limiter, 400));
    expect(limiter.tryReserve(900).ok).toBe(true);
  });

  test('cancel is once per reservation, and nothing after reconcile or refund', () => {
    const { limiter } = setup({ tpm: 1_000 });
    const reservation = reserve(limiter, 400);
    expect(limiter.refund(reservation)).toBe(true);
    expect(limiter.refund(reservation)).toBe(false);
    limiter.cancel(reservation);
    expect(limiter.headroom()).toBe(1);
    expect(limiter.reconcile(reserve(limiter, 100), Number.NaN)).toBe(false);
  });

  test('mirror lowers each level to the shared one', () => {
    const { limiter } = setup({ rpm: 10, tpm: 1_000 });
    limiter.mirror(0.5, 250);
    expect(limiter.headroom()).toBeCloseTo(0.05, 9);
    // 0.5 requests missing at 10 per minute: 3 s.
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 3_000 });
  });

  test('mirror never raises a level, and leaves a dimension without a shared level alone', () => {
    const { limiter } = setup({ rpm: 10, tpm: 1_000 });
    drain(limiter, 5, 100);
    limiter.mirror(9, undefined);
    expect(limiter.headroom()).toBeCloseTo(0.5, 9);
  });
});

describe('KeyLimiter: learning from headers', () => {
  test.each<[string, Record<string, string>, { rpm: number | undefined; tpm: number | undefined }]>([
    ['OpenAI', { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-limit-tokens': '30000' }, { rpm: 500, tpm: 30_000 }],
    ['Anthropic', { 'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-input-tokens-limit': '40000' }, { rpm: 50, tpm: 40_000 }],
    ['only requests', { 'x-ratelimit-limit-requests': '500' }, { rpm: 500, tpm: undefined }],
  ])('limits learnt from %s headers become the capacity', (_name, headers, limits) => {
    const { limiter } = setup();
    limiter.learn(h(headers));
    expect(limiter.limits).toEqual({ ...limits, source: 'headers' });
  });

  test('a newly learnt capacity starts full', () => {
    const { limiter } = setup();
    limiter.learn(h({ 'x-ratelimit-limit-requests': '3' }));
    drain(limiter, 3);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 20_000 });
  });

  test('remaining lowers the level', () => {
    const { limiter } = setup({ rpm: 100 });
    limiter.learn(h({ 'x-ratelimit-remaining-requests': '25' }));
    expect(limiter.headroom()).toBeCloseTo(0.25, 9);
  });

  test('remaining never raises the level', () => {
    const { limiter } = setup({ rpm: 100 });
    drain(limiter, 90);
    limiter.learn(h({ 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '100' }));
    expect(limiter.headroom()).toBeCloseTo(0.1, 9);
  });

  test('limit and remaining together: capacity learnt, then level lowered', () => {
    const { limiter } = setup();
    limiter.learn(h({ 'x-ratelimit-limit-tokens': '10000', 'x-ratelimit-remaining-tokens': '2500' }));
    expect(limiter.headroom()).toBeCloseTo(0.25, 9);
  });

  test('a later limit replaces the learnt one', () => {
    const { limiter } = setup();
    limiter.learn(h({ 'x-ratelimit-limit-requests': '500' }));
    limiter.learn(h({ 'x-ratelimit-limit-requests': '5000' }));
    expect(limiter.limits.rpm).toBe(5_000);
  });

  test('garbage headers teach nothing', () => {
    const { limiter } = setup();
    limiter.learn(h({ 'x-ratelimit-limit-requests': 'abc', 'x-ratelimit-remaining-requests': '-3' }));
    expect([limiter.limits, limiter.headroom()]).toEqual([{ rpm: undefined, tpm: undefined, source: 'none' }, 1]);
  });

  test.each<[keyof KeyLimiterOptions & ('rpm' | 'tpm'), Record<string, string>]>([
    ['rpm', { 'x-ratelimit-limit-requests': '500' }],
    ['tpm', { 'x-ratelimit-limit-tokens': '500' }],
  ])('a configured %s wins over a learnt one', (field, headers) => {
    const { limiter } = setup({ [field]: 100 });
    limiter.learn(h(headers));
    expect(limiter.limits).toMatchObject({ [field]: 100, source: 'config' });
  });

  test('a configured limit still has its level lowered by remaining', () => {
    const { limiter } = setup({ rpm: 100 });
    limiter.learn(h({ 'x-ratelimit-limit-requests': '40', 'x-ratelimit-remaining-requests': '10' }));
    expect([limiter.limits.rpm, limiter.headroom()]).toEqual([100, 0.1]);
  });

  test('a learnt rpm wins over the AIMD estimate', () => {
    const { limiter } = setup();
    limiter.rateLimited(h({}), 1_000);
    limiter.learn(h({ 'x-ratelimit-limit-requests': '300' }));
    expect(limiter.limits).toEqual({ rpm: 300, tpm: undefined, source: 'headers' });
  });
});

describe('KeyLimiter: 429s', () => {
  test.each<[string, Record<string, string>, number]>([
    ['the requests reset', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '20s' }, 20_000],
    ['retry-after-ms before the reset', { 'retry-after-ms': '1500', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '20s' }, 1_500],
    ['retry-after', { 'retry-after': '7' }, 7_000],
    ['an Anthropic reset', { 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': '1970-01-01T00:00:45Z' }, 45_000],
    ['the fallback when headers say nothing', {}, 30_000],
  ])('an unknown-limit key rests until %s', (_name, headers, restMs) => {
    const { clock, limiter } = setup({ adaptive: false });
    limiter.rateLimited(h(headers), 30_000);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: restMs });
    clock.t = restMs;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('a known-limit key is emptied: after the reset it holds what refilled meanwhile', () => {
    const { clock, limiter } = setup({ rpm: 600 });
    limiter.rateLimited(h({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1s' }), 30_000);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 1_000 });
    clock.t = 1_000;
    drain(limiter, 10);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 100 });
  });

  test('a tokens 429 closes the tokens dimension only', () => {
    const { limiter } = setup({ rpm: 600, tpm: 10_000 });
    limiter.rateLimited(h({ 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6s', 'x-ratelimit-remaining-requests': '500' }), 30_000);
    expect([limiter.tryReserve(1), limiter.tryReserve(0).ok]).toEqual([{ ok: false, waitMs: 6_000 }, true]);
  });

  test('without an empty window, the tightest share is the exhausted one', () => {
    const { limiter } = setup({ rpm: 600, tpm: 10_000 });
    const headers = {
      'x-ratelimit-limit-requests': '600',
      'x-ratelimit-remaining-requests': '590',
      'x-ratelimit-limit-tokens': '10000',
      'x-ratelimit-remaining-tokens': '300',
      'x-ratelimit-reset-tokens': '58.2s',
    };
    limiter.rateLimited(h(headers), 30_000);
    expect([limiter.tryReserve(500), limiter.tryReserve(0).ok]).toEqual([{ ok: false, waitMs: 58_200 }, true]);
  });

  test('a longer rest already in force is kept', () => {
    const { limiter } = setup({ adaptive: false });
    limiter.rateLimited(h({ 'retry-after': '60' }), 0);
    limiter.rateLimited(h({ 'retry-after': '1' }), 0);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 60_000 });
  });

  test('a 429 learns from its headers too', () => {
    const { limiter } = setup();
    limiter.rateLimited(h({ 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1s' }), 0);
    expect(limiter.limits).toEqual({ rpm: 60, tpm: undefined, source: 'headers' });
  });
});

describe('KeyLimiter: AIMD', () => {
  /** An adaptive limiter that sent `sent` requests, one per second from t = 0, then got a 429 at t = 10 s. */
  function throttled(sent: number, fallbackMs = 1_000) {
    const { clock, limiter } = setup();
    for (let i = 0; i < sent; i++) {
      clock.t = i * 1_000 * (10 / Math.max(sent, 10));
      reserve(limiter);
    }
    clock.t = 10_000;
    limiter.rateLimited(h({}), fallbackMs);
    return { clock, limiter };
  }

  test('the estimate starts unknown: nothing is limited', () => {
    const { limiter } = setup();
    drain(limiter, 10_000);
    expect(limiter.limits).toEqual({ rpm: undefined, tpm: undefined, source: 'none' });
  });

  test.each([
    [10, 7.5],
    [9, 6.75],
    [1, 1],
    [0, 1],
  ])('after %d requests in the last minute, the first 429 estimates %d rpm (three quarters)', (sent, rpm) => {
    const { limiter } = throttled(sent);
    expect(limiter.limits).toEqual({ rpm, tpm: undefined, source: 'adaptive' });
  });

  test('requests older than 60 s do not count', () => {
    const { clock, limiter } = setup();
    drain(limiter, 40);
    clock.t = 61_000;
    drain(limiter, 10);
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits.rpm).toBe(7.5);
  });

  test('the estimate paces: empty after the 429, one request per 60 000 / rpm ms', () => {
    const { limiter } = throttled(10);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 8_000 });
  });

  test.each([1, 3, 5, 20])('%d successes each add max(1, 2% of the estimate) / estimate rpm: about 1 rpm per minute of full use', (successes) => {
    const { limiter } = throttled(10);
    let expected = 7.5;
    for (let i = 0; i < successes; i++) {
      limiter.succeeded();
      expected += Math.max(1, expected * 0.02) / expected;
    }
    expect(limiter.limits.rpm).toBeCloseTo(expected, 9);
  });

  test('at full use for a minute the estimate grows by about 1 rpm', () => {
    const { limiter } = throttled(10);
    for (let i = 0; i < 7; i++) limiter.succeeded();
    expect(limiter.limits.rpm).toBeGreaterThan(8.3);
    expect(limiter.limits.rpm).toBeLessThan(8.5);
  });

  test('within one minute the estimate at most doubles', () => {
    const { limiter } = throttled(10);
    for (let i = 0; i < 500; i++) limiter.succeeded();
    expect(limiter.limits.rpm).toBe(15);
  });

  test('a minute later the estimate may double again', () => {
    const { clock, limiter } = throttled(10);
    for (let i = 0; i < 500; i++) limiter.succeeded();
    clock.t = 70_000;
    for (let i = 0; i < 2_000; i++) limiter.succeeded();
    expect(limiter.limits.rpm).toBe(30);
  });

  test('another 429 after the rest takes it down by a quarter again', () => {
    const { clock, limiter } = throttled(10);
    clock.t = 11_000;
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits.rpm).toBeCloseTo(5.625, 9);
  });

  test('a 429 during the rest (sent before the decrease) does not decrease again', () => {
    const { clock, limiter } = throttled(10);
    clock.t = 10_500;
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits.rpm).toBe(7.5);
  });

  test('the estimate never drops below 1 rpm', () => {
    const { clock, limiter } = throttled(1);
    clock.t = 20_000;
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits.rpm).toBe(1);
  });

  test('successes before any 429 change nothing', () => {
    const { limiter } = setup();
    limiter.succeeded();
    expect(limiter.limits.rpm).toBeUndefined();
  });

  test('adaptive: false never estimates', () => {
    const { limiter } = setup({ adaptive: false });
    drain(limiter, 10);
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits).toEqual({ rpm: undefined, tpm: undefined, source: 'none' });
  });

  test('a configured rpm is never adapted', () => {
    const { limiter } = setup({ rpm: 100 });
    drain(limiter, 10);
    limiter.rateLimited(h({}), 1_000);
    limiter.succeeded();
    expect(limiter.limits).toEqual({ rpm: 100, tpm: undefined, source: 'config' });
  });

  test('with only a tpm configured, AIMD still estimates rpm (source names the strongest)', () => {
    const { limiter } = setup({ tpm: 10_000 });
    drain(limiter, 10);
    limiter.rateLimited(h({}), 1_000);
    expect(limiter.limits).toEqual({ rpm: 7.5, tpm: 10_000, source: 'config' });
  });
});

describe('KeyLimiter: headroom', () => {
  test.each<[string, KeyLimiterOptions, (limiter: KeyLimiter) => void, number]>([
    ['nothing known', {}, (l) => drain(l, 50, 1_000), 1],
    ['a full bucket', { rpm: 100 }, () => {}, 1],
    ['a quarter of the requests used', { rpm: 100 }, (l) => drain(l, 25), 0.75],
    ['the tighter dimension', { rpm: 100, tpm: 1_000 }, (l) => drain(l, 10, 60), 0.4],
    ['an emptied bucket', { rpm: 10 }, (l) => drain(l, 10), 0],
    ['in debt', { tpm: 100 }, (l) => l.reconcile(reserve(l, 100), 150), 0],
    ['a rest in force, even without limits', {}, (l) => l.rateLimited(h({ 'retry-after': '5' }), 0), 0],
  ])('%s', (_name, options, act, headroom) => {
    const { limiter } = setup(options);
    act(limiter);
    expect(limiter.headroom()).toBeCloseTo(headroom, 9);
  });

  test('headroom recovers with time', () => {
    const { clock, limiter } = setup({ rpm: 100 });
    drain(limiter, 100);
    clock.t = 30_000;
    expect(limiter.headroom()).toBeCloseTo(0.5, 9);
  });
});

describe('KeyLimiter: snapshot and restore', () => {
  function busy() {
    const { clock, limiter } = setup({ tpm: 100_000 }, 1_700_000_000_000);
    drain(limiter, 12, 1_000);
    limiter.learn(h({ 'x-ratelimit-limit-tokens': '50000', 'x-ratelimit-remaining-tokens': '30000' }));
    clock.t += 5_000;
    limiter.rateLimited(h({ 'retry-after': '3' }), 1_000);
    limiter.succeeded();
    return { clock, limiter };
  }

  test('the snapshot survives JSON and restores the same state', () => {
    const { clock, limiter } = busy();
    const copy = new KeyLimiter({ tpm: 100_000 }, () => clock.t);
    expect(copy.restore(JSON.parse(JSON.stringify(limiter)))).toBe(true);
    expect(copy.toJSON()).toEqual(limiter.toJSON());
  });

  test('a restored limiter behaves the same', () => {
    const { clock, limiter } = busy();
    const copy = new KeyLimiter({ tpm: 100_000 }, () => clock.t);
    copy.restore(JSON.parse(JSON.stringify(limiter)));
    const probe = (l: KeyLimiter) => [l.limits, l.headroom(), l.tryReserve(2_000)];
    const before = probe(copy);
    expect(before).toEqual(probe(limiter));
    clock.t += 20_000;
    expect(probe(copy)).toEqual(probe(limiter));
  });

  test('restoring learnt limits under a configured one keeps the configured one', () => {
    const { limiter } = setup();
    limiter.learn(h({ 'x-ratelimit-limit-requests': '500' }));
    const configured = new KeyLimiter({ rpm: 50 }, () => 0);
    configured.restore(limiter.toJSON());
    expect(configured.limits).toEqual({ rpm: 50, tpm: undefined, source: 'config' });
  });

  test.each([[undefined], [null], ['state'], [[1]], [{}], [{ v: 2 }]])('state %j is not recognised and changes nothing', (state) => {
    const { limiter } = setup({ rpm: 10 });
    drain(limiter, 5);
    const before = limiter.toJSON();
    expect(limiter.restore(state)).toBe(false);
    expect(limiter.toJSON()).toEqual(before);
  });

  test('fields that do not fit are ignored one by one', () => {
    const { limiter } = setup({ rpm: 10 });
    const ok = limiter.restore({
      v: 1,
      learnt: { rpm: 'many', tpm: 2_000 },
      requests: { level: 'x', updatedAt: null, blockedUntil: Number.NaN },
      tokens: { level: 500, updatedAt: 0, blockedUntil: 0 },
      aimd: { estimate: -4, sent: [[1, 'x'], 'y'] },
    });
    expect([ok, limiter.limits, limiter.headroom()]).toEqual([true, { rpm: 10, tpm: 2_000, source: 'config' }, 0.25]);
  });
});

describe('KeyLimiter: options', () => {
  test.each([
    ['rpm', 0],
    ['rpm', -1],
    ['rpm', Number.NaN],
    ['rpm', Infinity],
    ['tpm', 0],
    ['tpm', '100'],
    ['adaptive', 'yes'],
  ])('%s: %j is rejected with a ConfigError naming the field', (field, value) => {
    const build = () => new KeyLimiter({ [field]: value } as KeyLimiterOptions);
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field }));
  });

  test('the default clock is Date.now', () => {
    const limiter = new KeyLimiter({});
    const result = limiter.tryReserve(0);
    expect(result.ok && Math.abs(result.reservation.at - Date.now()) < 1_000).toBe(true);
  });
});

describe('estimateTokens', () => {
  const text = (n: number) => 'x'.repeat(n);
  test.each<[string, Record<string, unknown> | undefined, number | undefined, number]>([
    ['no body: the default output', undefined, undefined, 256],
    ['no body with a custom default', undefined, 100, 100],
    ['chat messages + max_tokens', { messages: [{ role: 'user', content: text(40) }], max_tokens: 50 }, undefined, 60],
    ['characters round up', { messages: [{ role: 'user', content: text(41) }], max_tokens: 0 }, undefined, 11],
    [
      'content parts, images as data URLs skipped',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: text(20) },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${text(10_000)}`, detail: 'high' } },
            ],
          },
        ],
        max_completion_tokens: 10,
      },
      undefined,
      15,
    ],
    ['the default output when no max is named', { messages: [{ role: 'system', content: text(8) }] }, undefined, 258],
    ['a custom default output', { messages: [{ role: 'system', content: text(8) }] }, 1_000, 1_002],
    ['completions prompt strings', { prompt: [text(4), text(8)], max_tokens: 1 }, undefined, 4],
    ['completions prompt token ids count one each', { prompt: [1, 2, 3, 4, 5], max_tokens: 0 }, undefined, 5],
    ['responses input + instructions + max_output_tokens', { instructions: text(12), input: text(8), max_output_tokens: 100 }, undefined, 105],
    [
      'responses input items',
      { input: [{ role: 'user', content: [{ type: 'input_text', text: text(16) }] }, { type: 'function_call_output', call_id: 'call_1', output: text(4) }], max_output_tokens: 0 },
      undefined,
      5,
    ],
    ['embeddings input', { input: [text(400), text(400)], model: 'text-embedding-3-small' }, undefined, 456],
    ['tools count as input', { messages: [], tools: [{ type: 'function', function: { name: text(4), description: text(8) } }], max_tokens: 0 }, undefined, 3],
    ['the largest max field wins', { messages: [], max_tokens: 10, max_completion_tokens: 30 }, undefined, 30],
    ['n choices multiply the output', { messages: [], max_tokens: 10, n: 3 }, undefined, 30],
    ['a garbage max field is ignored', { messages: [], max_tokens: 'lots' }, undefined, 256],
    ['other fields are not input', { model: text(400), metadata: { note: text(400) }, max_tokens: 1 }, undefined, 1],
  ])('%s', (_name, body, defaultOutput, tokens) => {
    expect(estimateTokens(body, defaultOutput)).toBe(tokens);
  });

  test('a deeply nested body does not overflow the stack', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(estimateTokens({ input: deep, max_tokens: 0 })).toBe(0);
  });
});

describe('KeyLimiter under sustained overload (property)', () => {
  /**
   * 10 minutes of twice the allowed demand on a clock stepping 1 ms: requests
   * arrive evenly at 2 × rpm per minute and queue; each ms the queue takes
   * whatever the limiter admits.
   */
  function simulate(rpm: number) {
    let t = 0;
    const limiter = new KeyLimiter({ rpm }, () => t);
    const accepted: number[] = [];
    let arrived = 0;
    let pending = 0;
    let earliest = 0;
    let early = 0;
    for (t = 0; t < 600_000; t++) {
      const due = Math.floor(((t + 1) * 2 * rpm) / 60_000);
      pending += due - arrived;
      arrived = due;
      while (pending > 0) {
        const result = limiter.tryReserve(100);
        if (!result.ok) {
          earliest = t + result.waitMs;
          break;
        }
        if (t < earliest) early++;
        pending--;
        accepted.push(t);
      }
    }
    return { accepted, early };
  }

  /** The most accepted in any window [s, s + 60 s) with s ≥ from. */
  function maxPerMinute(accepted: number[], from = 0): number {
    let best = 0;
    let start = 0;
    for (let end = 0; end < accepted.length; end++) {
      while (accepted[start]! < from || accepted[end]! - accepted[start]! >= 60_000) start++;
      if (start <= end) best = Math.max(best, end - start + 1);
    }
    return best;
  }

  test.each([[600], [97]])('rpm %d: any 60 s window ≤ rpm + burst (rpm); once the burst is spent ≤ rpm + 1; utilisation ≥ 98 %%', (rpm) => {
    const { accepted, early } = simulate(rpm);
    expect(maxPerMinute(accepted)).toBeLessThanOrEqual(rpm + rpm);
    expect(maxPerMinute(accepted, 60_000)).toBeLessThanOrEqual(rpm + 1);
    const afterFirstMinute = accepted.filter((at) => at >= 60_000).length;
    expect(afterFirstMinute / ((rpm * 540_000) / 60_000)).toBeGreaterThanOrEqual(0.98);
    expect(early).toBe(0);
  });
});
