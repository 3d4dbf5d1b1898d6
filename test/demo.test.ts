/**
 * The offline demo's main job: its keyplex column must beat the single key
 * on what the application sees. Runs the real loopback simulator (no msw in
 * this file) with latencies off and a 2 s rate window so it stays fast.
 */
import { expect, test } from 'vitest';
import { runDemo } from '../src/demo/run';

test('through keyplex the application sees fewer errors and more throughput than with one key', async () => {
  const result = await runDemo({ requests: 240, concurrency: 16, faults: 0.042, rpm: 60, seed: 3, latencyScale: 0, rateWindowMs: 2000 });
  const [single, keyplex] = result.runs;

  expect(single!.errors).toBeGreaterThan(0);
  expect(keyplex!.errors).toBeLessThan(single!.errors);
  expect(keyplex!.throughputRps).toBeGreaterThan(single!.throughputRps);
  expect(keyplex!.requests).toBe(240);
  expect(result.keyplexStats.totals.successes).toBe(240 - keyplex!.errors);
}, 30_000);
