import { describe, expect, test } from 'vitest';
import { Budgets } from '../../../src/usage/budget';
import type { BudgetOptions, BudgetWindow, RequestBudgetInfo } from '../../../src/usage/budget';

const info: RequestBudgetInfo = { model: 'gpt-4.1', tags: [] };
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

function setup(window: BudgetWindow, start: number, mode: BudgetOptions['mode'] = 'calendar', limitUsd = 100) {
  const clock = { t: start };
  const budgets = new Budgets([{ scope: { overall: true }, limitUsd, window, mode }], () => {}, () => clock.t);
  const spend = (usd: number) => budgets.settle(budgets.hold(info, usd), info, usd);
  const spent = () => budgets.stats()[0]!.spentUsd;
  const resetsInMs = () => budgets.stats()[0]!.resetsInMs;
  return { clock, budgets, spend, spent, resetsInMs };
}

describe('calendar windows (UTC)', () => {
  test.each<[BudgetWindow, number, number]>([
    ['minute', Date.UTC(2025, 5, 10, 8, 30, 59, 999), Date.UTC(2025, 5, 10, 8, 31)],
    ['hour', Date.UTC(2025, 5, 10, 8, 59, 59, 999), Date.UTC(2025, 5, 10, 9)],
    ['day', Date.UTC(2025, 5, 10, 23, 59, 59, 999), Date.UTC(2025, 5, 11)],
    ['month', Date.UTC(2025, 5, 30, 23, 59, 59, 999), Date.UTC(2025, 6, 1)],
  ])('a %s window keeps spend until its UTC boundary and resets exactly there', (window, lastMs, boundary) => {
    const { clock, spend, spent } = setup(window, lastMs - 1);
    spend(1);
    clock.t = lastMs;
    expect(spent()).toBe(1);
    clock.t = boundary;
    expect(spent()).toBe(0);
  });

  test.each<[string, number, number]>([
    ['January (31 days)', Date.UTC(2025, 0, 1), 31],
    ['February 2025 (28 days)', Date.UTC(2025, 1, 1), 28],
    ['February 2024, a leap year (29 days)', Date.UTC(2024, 1, 1), 29],
    ['April (30 days)', Date.UTC(2025, 3, 1), 30],
    ['December (31 days, into the next year)', Date.UTC(2025, 11, 1), 31],
  ])('a month window of %s resets after its own length', (_, start, days) => {
    const { resetsInMs } = setup('month', start);
    expect(resetsInMs()).toBe(days * DAY);
  });

  test('a month window resets between 28 February and 1 March', () => {
    const { clock, spend, spent } = setup('month', Date.UTC(2025, 1, 28, 12));
    spend(2);
    clock.t = Date.UTC(2025, 1, 28, 23, 59, 59, 999);
    expect(spent()).toBe(2);
    clock.t = Date.UTC(2025, 2, 1);
    expect(spent()).toBe(0);
  });

  test('in a leap year, 29 February is still February', () => {
    const { clock, spend, spent } = setup('month', Date.UTC(2024, 1, 28, 12));
    spend(2);
    clock.t = Date.UTC(2024, 1, 29, 18);
    expect(spent()).toBe(2);
    clock.t = Date.UTC(2024, 2, 1);
    expect(spent()).toBe(0);
  });

  test.each<BudgetWindow>(['minute', 'hour', 'day', 'month'])('a %s window resets at the year end', (window) => {
    const { clock, spend, spent, resetsInMs } = setup(window, Date.UTC(2025, 11, 31, 23, 59, 59, 0));
    spend(1);
    expect(resetsInMs()).toBe(1_000);
    clock.t = Date.UTC(2026, 0, 1);
    expect(spent()).toBe(0);
  });

  test('a day window follows UTC midnight, not local time', () => {
    // 2025-06-10 23:30 UTC is already the 11th in UTC+2 and still the 10th in UTC-5.
    const { resetsInMs } = setup('day', Date.UTC(2025, 5, 10, 23, 30));
    expect(resetsInMs()).toBe(30 * MIN);
  });

  test('a crossed calendar budget reports the time to the window end in the check', () => {
    const { budgets, spend } = setup('hour', Date.UTC(2025, 5, 10, 8, 45), 'calendar', 1);
    spend(1);
    expect(budgets.check(info, 0.01).exceeded[0]?.resetsInMs).toBe(15 * MIN);
  });

  test('a clock that steps back into an earlier window does not reset the current one', () => {
    const { clock, spend, spent } = setup('minute', Date.UTC(2025, 5, 10, 8, 31, 5));
    spend(1);
    clock.t = Date.UTC(2025, 5, 10, 8, 30, 50);
    expect(spent()).toBe(1);
    clock.t = Date.UTC(2025, 5, 10, 8, 31, 30);
    expect(spent()).toBe(1);
  });
});

describe('rolling windows', () => {
  /** Midnight UTC: the start of a bucket for every rolling window. */
  const T0 = Date.UTC(2025, 5, 10);

  test('a rolling minute expires spend bucket by bucket, one second at a time', () => {
    const { clock, spend, spent } = setup('minute', T0, 'rolling');
    spend(1); // bucket T0
    clock.t = T0 + 10_000;
    spend(2);
    clock.t = T0 + 20_500;
    spend(4);
    clock.t = T0 + 59_999;
    expect(spent()).toBe(7);
    clock.t = T0 + 60_000;
    expect(spent()).toBe(6);
    clock.t = T0 + 70_000;
    expect(spent()).toBe(4);
    clock.t = T0 + 79_999;
    expect(spent()).toBe(4);
    clock.t = T0 + 80_000; // recorded at 20.5 s, in the bucket of second 20: counted for 59.5 s
    expect(spent()).toBe(0);
  });

  test.each<[BudgetWindow, number, number]>([
    ['minute', MIN, 1_000],
    ['hour', HOUR, MIN],
    ['day', DAY, 24 * MIN],
    ['month', 30 * DAY, 12 * HOUR],
  ])('a rolling %s counts spend for between the window less one bucket and the whole window', (window, length, bucket) => {
    const late = setup(window, T0 + bucket - 1, 'rolling'); // the end of a bucket
    late.spend(1);
    late.clock.t = T0 + length - 1;
    expect(late.spent()).toBe(1);
    late.clock.t = T0 + length;
    expect(late.spent()).toBe(0); // counted for length − bucket + 1 ms

    const early = setup(window, T0, 'rolling'); // the start of a bucket
    early.spend(1);
    early.clock.t = T0 + length - 1;
    expect(early.spent()).toBe(1);
    early.clock.t = T0 + length;
    expect(early.spent()).toBe(0); // counted for the whole window
  });

  test('a rolling month is 30 days, whatever the calendar month', () => {
    const { clock, spend, spent } = setup('month', Date.UTC(2025, 1, 1), 'rolling');
    spend(1);
    clock.t = Date.UTC(2025, 2, 2); // 29 days later, past the end of February
    expect(spent()).toBe(1);
    clock.t = Date.UTC(2025, 2, 3); // 30 days
    expect(spent()).toBe(0);
  });

  test('a long idle gap clears every bucket at once', () => {
    const { clock, spend, spent } = setup('hour', T0, 'rolling');
    for (let i = 0; i < 60; i++) {
      clock.t = T0 + i * MIN;
      spend(1);
    }
    expect(spent()).toBe(60);
    clock.t = T0 + 5 * HOUR;
    expect(spent()).toBe(0);
  });

  test('a crossed rolling budget reports when enough spend has expired for the request to fit', () => {
    const { clock, budgets, spend } = setup('minute', T0, 'rolling', 1);
    spend(0.4); // expires at T0 + 60 s
    clock.t = T0 + 10_000;
    spend(0.4); // expires at T0 + 70 s
    clock.t = T0 + 20_000;
    spend(0.2); // expires at T0 + 80 s
    clock.t = T0 + 30_000;
    expect(budgets.check(info, 0.3).exceeded[0]?.resetsInMs).toBe(30_000);
    expect(budgets.check(info, 0.5).exceeded[0]?.resetsInMs).toBe(40_000);
  });

  test('stats report when all rolling spend will have left the window, 0 when there is none', () => {
    const { clock, spend, resetsInMs } = setup('minute', T0, 'rolling');
    expect(resetsInMs()).toBe(0);
    spend(1);
    clock.t = T0 + 10_000;
    spend(1);
    clock.t = T0 + 30_000;
    expect(resetsInMs()).toBe(40_000);
  });

  test('a rolling budget crossed by holds alone hints one bucket when no spend is recorded', () => {
    const { budgets } = setup('minute', T0, 'rolling', 1);
    budgets.hold(info, 1);
    expect(budgets.check(info, 0.1).exceeded[0]?.resetsInMs).toBe(1_000);
  });
});
