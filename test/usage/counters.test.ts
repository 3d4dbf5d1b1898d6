/**
 * The counter sets behind stats(): the rare counts (failures, cache and
 * reasoning tokens, retries, fail-overs) are made at the first, yet read,
 * reset and fold into other scopes as plain counters would.
 */
import { describe, expect, test } from 'vitest';
import { TimedCounterSet } from '../../src/usage/stats';

const USAGE = { inputTokens: 10, outputTokens: 5, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 15 };

describe('TimedCounterSet', () => {
  test('a scope that only succeeds reads zero rare counts; the first of each counts from there', () => {
    const c = new TimedCounterSet(true);
    c.requests++;
    c.succeed(USAGE, 0.5);
    expect(c.snapshot()).toEqual({
      requests: 1,
      successes: 1,
      failures: {},
      tokens: { ...USAGE },
      costUsd: 0.5,
      unpricedReplies: 0,
      retries: 0,
      failovers: 0,
    });
    c.retries++;
    c.failovers++;
    c.fail('rate_limit');
    c.fail('rate_limit');
    c.succeed({ ...USAGE, cachedInputTokens: 4, cacheWriteTokens: 2, reasoningTokens: 3 }, null);
    expect(c.snapshot()).toMatchObject({
      successes: 2,
      failures: { rate_limit: 2 },
      tokens: { inputTokens: 20, outputTokens: 10, cachedInputTokens: 4, cacheWriteTokens: 2, reasoningTokens: 3, totalTokens: 30 },
      unpricedReplies: 1,
      retries: 1,
      failovers: 1,
    });
  });

  test('absorb folds every count and both histograms; reset zeroes them', () => {
    const a = new TimedCounterSet(true);
    a.fail('server_error');
    a.retries += 2;
    a.succeed({ ...USAGE, reasoningTokens: 7 }, 1);
    a.latency.record(40);
    a.ttft.record(12);
    const total = new TimedCounterSet();
    total.succeed(USAGE, 1);
    total.absorb(a);
    expect(total.snapshot()).toMatchObject({ successes: 2, failures: { server_error: 1 }, retries: 2, failovers: 0, costUsd: 2 });
    expect(total.snapshot().tokens.reasoningTokens).toBe(7);
    expect(total.timings()).toEqual({ latencyMs: { count: 1, p50: 40, p95: 40, p99: 40 }, ttftMs: { count: 1, p50: 12, p95: 12, p99: 12 } });
    a.reset();
    expect(a.snapshot()).toEqual(new TimedCounterSet().snapshot());
    expect(a.timings().latencyMs.count).toBe(0);
  });
});
