import { afterEach, expect, test, vi } from 'vitest';
import { adjustmentArgs, DEFER_FLUSH_MS, DeferredAdjustments, windowArgs } from '../../src/store/scripts';

afterEach(() => {
  vi.useRealTimers();
});

const KEY = { provider: 'openai', keyId: 'k1' };
const LIMITS = { rpm: 10, tpm: 1_000 };

test("adjustments add up per key and reservation, and ride with the key's next reservation", () => {
  vi.useFakeTimers();
  const written: unknown[] = [];
  const deferred = new DeferredAdjustments((...args) => written.push(args));
  deferred.add(KEY, LIMITS, 0, -100, 1_000);
  deferred.add(KEY, LIMITS, 0, 30, 1_000);
  deferred.add(KEY, LIMITS, 0, 5, 2_000);
  deferred.add(KEY, LIMITS, 0, 7);
  deferred.add(KEY, LIMITS, 0, 0, 3_000);
  const held = deferred.take(KEY);
  expect(held).toEqual([
    { at: 1_000, requests: 0, tokens: -70 },
    { at: 2_000, requests: 0, tokens: 5 },
    { at: undefined, requests: 0, tokens: 7 },
  ]);
  expect(adjustmentArgs(held)).toEqual([1_000, 0, -70, 2_000, 0, 5, '', 0, 7]);
  expect(deferred.take(KEY)).toEqual([]);
  vi.advanceTimersByTime(DEFER_FLUSH_MS);
  expect(written).toEqual([]);
});

test('what no reservation carries is written within a second, once per key', () => {
  vi.useFakeTimers();
  const written: unknown[] = [];
  const deferred = new DeferredAdjustments((...args) => written.push(args));
  deferred.add(KEY, LIMITS, 0, -100, 1_000);
  deferred.add(KEY, LIMITS, 0, -50, 1_500);
  deferred.add({ provider: 'openai', keyId: 'k2' }, LIMITS, 0, 5, 1_000);
  vi.advanceTimersByTime(DEFER_FLUSH_MS - 1);
  expect(written).toEqual([]);
  vi.advanceTimersByTime(1);
  expect(written).toEqual([
    [KEY, LIMITS, [{ at: 1_000, requests: 0, tokens: -100 }, { at: 1_500, requests: 0, tokens: -50 }]],
    [{ provider: 'openai', keyId: 'k2' }, LIMITS, [{ at: 1_000, requests: 0, tokens: 5 }]],
  ]);
});

test('a reservation that failed gives its adjustment back to be carried later', () => {
  const deferred = new DeferredAdjustments(() => {});
  deferred.add(KEY, LIMITS, 0, -100, 1_000);
  const held = deferred.take(KEY);
  deferred.restore(KEY, LIMITS, held);
  expect(deferred.take(KEY)).toEqual([{ at: 1_000, requests: 0, tokens: -100 }]);
  deferred.stop();
});

test('the scripts get each window’s period, and a time to live of at least two periods', () => {
  expect(windowArgs({ rpm: 14_400, tpm: 6_000, requestsPeriodMs: 86_400_000, tokensPeriodMs: 60_000 }, '')).toEqual([14_400, 6_000, '', 172_800_000, 86_400_000, 60_000]);
  expect(windowArgs({ rpm: 5, tpm: undefined }, '42')).toEqual([5, 0, '42', 120_000, 0, 0]);
});
