/**
 * Spend a `RedisStore` keeps while Redis is away or refuses it (writeback.ts,
 * `KeptSpend`), to write back when Redis answers again: bounded in memory,
 * and none of it dropped however many requests the outage lasts.
 */
import { describe, expect, test } from 'vitest';
import { KeptSpend } from '../../src/store/redis/writeback';
import type { StoreBudgetRef } from '../../src/store/types';

const DAY: StoreBudgetRef = { id: 'overall/day', bucketMs: 3_600_000, windowMs: 86_400_000 };
const TENANT: StoreBudgetRef = { id: 'tenant/acme/day', bucketMs: 3_600_000, windowMs: 86_400_000 };
const HOUR = 3_600_000;
const start = 1_800_000_000_000 - (1_800_000_000_000 % HOUR);

const sum = (kept: KeptSpend) => kept.all().reduce((total, { spend }) => total + spend.nanos, 0);

describe('spend kept for the write-back', () => {
  test('30,000 requests of an outage, two sessions and two budget sets over two hours: all of it kept (before, the oldest 20,000 were dropped), in a handful of entries', () => {
    const kept = new KeptSpend();
    for (let i = 0; i < 30_000; i++) {
      const at = start + Math.floor((i * 2 * HOUR) / 30_000);
      kept.keep(i % 2 === 0 ? 'session-a' : 'session-b', { budgets: i % 3 === 0 ? [DAY, TENANT] : [DAY], nanos: 5_000, at });
    }
    expect(sum(kept)).toBe(30_000 * 5_000);
    expect(kept.size).toBeLessThanOrEqual(8);
  });

  test('spend kept while a write-back is on its way is not added to an entry it carries: written once, the rest kept', () => {
    const kept = new KeptSpend();
    kept.keep('a', { budgets: [DAY], nanos: 10, at: start });
    const sent = kept.all();
    kept.keep('a', { budgets: [DAY], nanos: 7, at: start + 1 });
    kept.written(sent);
    expect(kept.all().map(({ spend }) => spend.nanos)).toEqual([7]);
  });

  test('spend in another bucket, for other budgets or from another session is kept apart: each is written with its own bucket and announced by its own session', () => {
    const kept = new KeptSpend();
    kept.keep('a', { budgets: [DAY], nanos: 1, at: start });
    kept.keep('a', { budgets: [DAY], nanos: 2, at: start + HOUR });
    kept.keep('a', { budgets: [DAY, TENANT], nanos: 3, at: start + HOUR });
    kept.keep('b', { budgets: [DAY], nanos: 4, at: start + HOUR });
    kept.keep('a', { budgets: [DAY], nanos: 5, at: start + HOUR + 1 });
    expect(kept.all().map(({ origin, spend }) => [origin, spend.budgets.length, spend.nanos])).toEqual([
      ['a', 1, 1],
      ['a', 1, 7],
      ['a', 2, 3],
      ['b', 1, 4],
    ]);
  });
});
