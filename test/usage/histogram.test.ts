import { describe, expect, test } from 'vitest';
import { LatencyHistogram } from '../../src/usage/histogram';

/** A seeded generator (mulberry32): the same samples on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The exact percentile: the sample at rank round(p% of n), at least 1 (as HdrHistogram counts). */
function exact(sorted: number[], p: number): number {
  return sorted[Math.max(1, Math.floor((p / 100) * sorted.length + 0.5)) - 1]!;
}

describe('LatencyHistogram', () => {
  test.each([true, false])('compact %s: percentiles within 1/128 of the exact ones, 1 ms to 1 h', (compact) => {
    const next = random(7);
    for (let trial = 0; trial < 150; trial++) {
      const h = new LatencyHistogram(compact);
      const n = 1 + Math.floor(next() * 2000);
      const scale = 10 ** (next() * 6.6);
      const samples = Array.from({ length: n }, () => Math.min(3_600_000, Math.max(1, Math.round(next() * scale))));
      for (const ms of samples) h.record(ms);
      samples.sort((a, b) => a - b);
      const got = h.percentiles();
      expect(got.count).toBe(n);
      for (const [name, p] of [['p50', 50], ['p95', 95], ['p99', 99]] as const) {
        const want = exact(samples, p);
        expect(Math.abs(got[name]! - want) / want).toBeLessThanOrEqual(1 / 128);
      }
      const sum = new LatencyHistogram();
      sum.absorb(h);
      expect(sum.percentiles()).toEqual(got);
    }
  });

  test('exact below 128 ms; clamped to 1 ms – 1 h; no samples reads undefined', () => {
    const h = new LatencyHistogram(true);
    expect(h.percentiles()).toEqual({ count: 0, p50: undefined, p95: undefined, p99: undefined });
    for (const ms of [0, 0.2, 57, 127]) h.record(ms);
    expect(h.percentiles()).toEqual({ count: 4, p50: 1, p95: 127, p99: 127 });
    h.record(10 * 3_600_000);
    expect(h.percentiles().p99).toBeLessThanOrEqual(3_600_000 * (1 + 1 / 128));
    h.reset();
    expect(h.percentiles().count).toBe(0);
  });

  test('a compact histogram holding every bucket turns dense and keeps its counts', () => {
    const h = new LatencyHistogram(true);
    const dense = new LatencyHistogram();
    for (let ms = 1; ms <= 3_600_000; ms = Math.ceil(ms * 1.005)) {
      h.record(ms);
      dense.record(ms);
    }
    expect(h.percentiles()).toEqual(dense.percentiles());
    h.reset();
    h.record(100);
    expect(h.percentiles()).toMatchObject({ count: 1, p50: 100 });
  });
});
