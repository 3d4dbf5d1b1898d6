/**
 * examples/prometheus-metrics.ts run as a user runs it (against the built
 * package), scraped over HTTP, its exposition parsed. No msw in this file:
 * the example's simulator and its /metrics are real loopback servers.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parseExposition } from '../support/prometheus';

describe('examples/prometheus-metrics.ts', () => {
  const built = existsSync(fileURLToPath(new URL('../../dist/prometheus.js', import.meta.url)));
  if (!built) console.warn('examples/prometheus-metrics.ts imports the built package: run `npm run build` first (CI does); the scrape test is skipped.');

  test.runIf(built)('serves /metrics from node:http: a scrape parses, and the counters add up', async () => {
    const example = spawn(process.execPath, [fileURLToPath(new URL('../../examples/prometheus-metrics.ts', import.meta.url))], {
      env: { ...process.env, KEYPLEX_EXAMPLE_WAIT_FOR_SCRAPE: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => example.on('exit', resolve));
    try {
      let out = '';
      const url = await new Promise<string>((resolve, reject) => {
        example.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const found = /metrics: (\S+)/.exec(out);
          if (found) resolve(found[1]!);
        });
        void exited.then((code) => reject(new Error(`the example exited (${code}) before serving: ${out}`)));
      });
      const res = await fetch(url);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const m = parseExposition(await res.text());
      // 31 requests, all answered (fail-over to deepseek covers openai's 5xx and rate limit).
      expect(m.sum('keyplex_requests_total', { outcome: 'success' })).toBe(31);
      expect(m.sum('keyplex_request_duration_seconds_count')).toBe(31);
      expect(m.sum('keyplex_time_to_first_chunk_seconds_count')).toBe(1);
      expect(m.sum('keyplex_cost_usd_total')).toBeGreaterThan(0);
      expect(m.sum('keyplex_keys')).toBe(3);
      expect(new Set(m.find('keyplex_requests_total').map((s) => s.labels.model))).toEqual(new Set(['gpt-4.1']));
      expect(await exited).toBe(0);
    } finally {
      example.kill();
    }
  }, 30_000);
});
