/**
 * AIMD (docs/rate-limits.md "Providers without headers: adaptive (AIMD)"):
 * the estimator alone, and a {@link KeyLimiter} paced by it against a model
 * upstream with a hidden sliding-minute limit — on a clock of the test's own,
 * so every figure is a count, not a timing.
 */
import { describe, expect, test } from 'vitest';
import { KeyLimiter } from '../../../src/resilience/rate-limit';
import { AimdEstimator } from '../../../src/resilience/rate-limit/aimd';

const MINUTE = 60_000;
const STEP_MS = 100;
/** keyplex's `cooldownMs` default: the rest after a 429 without `retry-after`. */
const COOLDOWN_MS = 5_000;

interface Upstream {
  /** The hidden limit (requests in any 60 s) at `t`. */
  limit: (t: number) => number;
  /** Every request in `[from, until)` meets a 429 without `retry-after` (a storm). */
  storm?: { from: number; until: number };
}

/**
 * A key paced by a {@link KeyLimiter} (no limit stated, AIMD on) against a
 * model upstream: requests offered at twice the hidden limit, answered at
 * once. Calls `probe` every step with the clock and the estimate.
 */
function drive(upstream: Upstream, untilMs: number, probe: (t: number, rpm: number | undefined) => void = () => {}) {
  let t = 0;
  const limiter = new KeyLimiter({}, () => t);
  const accepted: number[] = [];
  const rejectedAt: number[] = [];
  let credit = 0;
  for (; t < untilMs; t += STEP_MS) {
    credit += (2 * upstream.limit(t) * STEP_MS) / MINUTE;
    while (credit >= 1) {
      const result = limiter.tryReserve(0);
      if (!result.ok) break;
      credit--;
      while (accepted.length > 0 && accepted[0]! <= t - MINUTE) accepted.shift();
      const storm = upstream.storm !== undefined && t >= upstream.storm.from && t < upstream.storm.until;
      if (!storm && accepted.length < upstream.limit(t)) {
        accepted.push(t);
        limiter.observe(new Headers(), result.reservation);
        limiter.succeeded();
      } else {
        rejectedAt.push(t);
        limiter.rateLimited(new Headers(), COOLDOWN_MS, result.reservation);
      }
    }
    credit = Math.min(credit, 1);
    probe(t, limiter.limits.rpm);
  }
  return { limiter, rejectedAt };
}

/** After 10 minutes at the limit, a 2-minute storm: when the estimate is back at the limit (ms after the storm), and its low. */
function recovery(limit: number) {
  const storm = { from: 10 * MINUTE, until: 12 * MINUTE };
  let low = Infinity;
  let backAt: number | undefined;
  let before: number | undefined;
  drive({ limit: () => limit, storm }, 4 * 60 * MINUTE, (t, rpm) => {
    if (t === storm.from - STEP_MS) before = rpm;
    if (t >= storm.from && rpm !== undefined) low = Math.min(low, rpm);
    if (t >= storm.until && backAt === undefined && rpm !== undefined && rpm >= limit) backAt = t - storm.until;
  });
  return { before, low, backAt };
}

describe('AIMD: recovery after a storm of 429s (10 minutes at the limit, then 2 minutes of 429s without retry-after)', () => {
  // Before the fix (+1 rpm per minute of use from the storm's low): 30 rpm back after 27.5 min, 300 rpm after 158.9 min.
  test.each([
    [30, 4],
    [300, 8],
  ])('a key of %i rpm is back at its limit within %i minutes (doubling per minute up to the rate served before the storm)', (limit, minutes) => {
    const r = recovery(limit);
    console.info(`aimd recovery ${limit} rpm: before the storm ${r.before}, low ${r.low.toFixed(1)}, back at the limit ${r.backAt === undefined ? 'never' : `${(r.backAt / MINUTE).toFixed(1)} min`} after it`);
    expect(r.before).toBeGreaterThanOrEqual(limit);
    expect(r.low).toBeLessThan(limit / 4);
    expect(r.backAt).toBeLessThanOrEqual(minutes * MINUTE);
  });
});

describe('AIMD: a limit that went down during the storm', () => {
  // "Extra" 429s: those of the 30 minutes after the storm beyond the steady probing of the 30 after them.
  test.each([
    [30, 10],
    [300, 30],
    [300, 100],
  ])('%i rpm before, %i after: at most 3 extra 429s while regrowing, then the estimate holds near the new limit', (before, after) => {
    const storm = { from: 10 * MINUTE, until: 12 * MINUTE };
    let last: number | undefined;
    const { rejectedAt } = drive({ limit: (t) => (t < storm.from ? before : after), storm }, storm.until + 60 * MINUTE, (_t, rpm) => (last = rpm));
    const late = rejectedAt.filter((t) => t >= storm.until);
    const first = late.filter((t) => t < storm.until + 30 * MINUTE).length;
    console.info(`aimd drop ${before}→${after}: 429s in the 30 min after the storm ${first}, in the 30 after those ${late.length - first}; estimate at the end ${last?.toFixed(1)}`);
    expect(first).toBeLessThanOrEqual(late.length - first + 3);
    expect(last).toBeGreaterThanOrEqual(after * 0.75);
    expect(last).toBeLessThanOrEqual(after * 1.25);
  });
});

describe('AimdEstimator: the proven rate', () => {
  /** 30 served in the minute before `t`, then a 429 at `t`, then 429s after each rest until the estimate is below 8. */
  function stormed() {
    const aimd = new AimdEstimator();
    let t = 0;
    for (let i = 0; i < 30; i++) {
      t += 2_000;
      aimd.recordSend(t);
      aimd.recordSuccess(t);
      aimd.onSuccess(t);
    }
    while (aimd.estimate === undefined || aimd.estimate >= 8) {
      aimd.recordSend(t);
      aimd.onRateLimited(t, t + COOLDOWN_MS);
      t += COOLDOWN_MS;
    }
    return { aimd, t: t + MINUTE };
  }

  test('below the rate served before the storm, each success adds 1 rpm (at most doubling per minute) up to it', () => {
    const { aimd, t } = stormed();
    const low = aimd.estimate!;
    expect(low).toBeLessThan(8);
    for (let i = 0; i < 3; i++) aimd.onSuccess(t);
    expect(aimd.estimate).toBeCloseTo(low + 3);
    for (let i = 0; i < 30; i++) aimd.onSuccess(t);
    expect(aimd.estimate).toBeCloseTo(2 * low); // the doubling cap within one minute
    let minutes = 0;
    while (aimd.estimate! < 30 && minutes < 10) {
      minutes++;
      for (let i = 0; i < 30 && aimd.estimate! < 30; i++) aimd.onSuccess(t + minutes * MINUTE);
    }
    expect(minutes).toBe(2); // ~7 → ~14 (the successes above) → 28 → 30
    expect(aimd.estimate).toBe(30); // the proven rate, not past it
    aimd.onSuccess(t + minutes * MINUTE);
    expect(aimd.estimate).toBeCloseTo(30 + 1 / 30); // above it: the additive increase
  });

  test('a 429 while regrowing proves only what the key served then: growth is additive from there', () => {
    const { aimd, t } = stormed();
    for (let i = 0; i < 4; i++) {
      aimd.recordSuccess(t + i);
      aimd.onSuccess(t + i);
    }
    const at429 = aimd.estimate!;
    expect(aimd.onRateLimited(t + 10, t + 10 + COOLDOWN_MS)).toBe(true);
    const decreased = aimd.estimate!;
    expect(decreased).toBeCloseTo(Math.max(4, at429 * 0.75));
    aimd.onSuccess(t + MINUTE);
    expect(aimd.estimate).toBeCloseTo(decreased + 1 / decreased);
  });

  test('forget() and clear() drop the proven rate with the estimate', () => {
    for (const reset of ['forget', 'clear'] as const) {
      const { aimd, t } = stormed();
      aimd[reset]();
      expect(aimd.estimate).toBeUndefined();
      aimd.onRateLimited(t, t + COOLDOWN_MS);
      const estimate = aimd.estimate!;
      aimd.onSuccess(t + MINUTE);
      expect(aimd.estimate).toBeCloseTo(estimate + Math.max(1, estimate * 0.02) / estimate);
    }
  });
});
