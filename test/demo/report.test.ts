/**
 * The demo's HTML report, from a short seeded demo run, opened in a real
 * headless browser (Debian's Chromium through playwright-core): it loads
 * with no console error and no network request beyond its own file, and
 * shows its charts — the three runs' latency curves, one row per key with
 * the revoked key's disable and the outage's circuit openings marked, the
 * spend per model — drawn from the
 * run's own figures. Skips, loudly, where no Chromium is installed
 * (fails instead with KEYPLEX_REQUIRE_BROWSER=1, as in CI).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderReport } from '../../src/demo/html';
import { runDemo, type DemoResult } from '../../src/demo/run';
import { DEMO_MODELS } from '../../src/demo/setup';
import { browserAvailable, launchBrowser, screenshotReport, type HeadlessBrowser } from '../support/browser';

const available = browserAvailable('demo HTML report (test/demo/report.test.ts)');

describe.skipIf(!available)('the demo HTML report in headless Chromium', () => {
  let dir: string;
  let file: string;
  let result: DemoResult;
  let browser: HeadlessBrowser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyplex-report-'));
    file = join(dir, 'report.html');
    // With the outage, Anthropic answers 503 from its 31st request on: its circuits open.
    result = await runDemo({ requests: 200, concurrency: 12, faults: 0.042, rpm: 60, seed: 5, latencyScale: 0.2, rateWindowMs: 2000, costRequests: 40, outage: true, record: true });
    writeFileSync(file, renderReport(result));
    browser = await launchBrowser();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('loads offline: no console error, no script error, no request but its own file', async () => {
    const { page, log } = await browser.open(file);
    expect(log.consoleErrors).toEqual([]);
    expect(log.pageErrors).toEqual([]);
    expect(log.failedRequests).toEqual([]);
    expect(log.requests).toEqual([`file://${file}`]);
    // Self-contained: nothing in it points anywhere else.
    const html = readFileSync(file, 'utf8');
    expect(html).not.toMatch(/<script|<link|<img|@import|url\((?!#)/i);
    await page.close();
  }, 60_000);

  test('shows the latency curves of the three runs, with their legend and percentiles', async () => {
    const { page } = await browser.open(file);
    expect(await page.locator('h2').allTextContents()).toEqual([
      'Latency distribution: single key, same keys through the plain SDK, keyplex',
      'Side by side',
      "Each key's load over the keyplex run",
      'Cost per model',
    ]);
    const latency = page.locator('svg[data-chart="latency"]');
    await expect(latency.isVisible()).resolves.toBe(true);
    const series = latency.locator('g.series');
    expect(await series.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-series')))).toEqual(['single key', 'same keys, plain SDK', 'keyplex']);
    // Each curve holds one point per answered request of its run, and is drawn.
    for (const [i, run] of result.runs.entries()) {
      expect(Number(await series.nth(i).getAttribute('data-points'))).toBe(run.requests - run.errors);
      const box = await series.nth(i).locator('path').boundingBox();
      expect(box!.width).toBeGreaterThan(10);
    }
    expect(await latency.locator('g.legend text').allTextContents()).toEqual(['single key', 'same keys, plain SDK', 'keyplex']);
    expect(await page.locator('table.percentiles tbody tr').count()).toBe(3);
    await page.close();
  }, 60_000);

  test("draws one row per key with its attempts, the revoked key's disable and the outage's circuit openings", async () => {
    const { page } = await browser.open(file);
    const chart = page.locator('svg[data-chart="keys"]');
    const rows = chart.locator('g.key-row');
    const keys = Object.values(result.keyplexStats.providers).flatMap((p) => p.keys.map((k) => ({ name: `${p.id}/${k.id}`, attempts: k.requests })));
    expect(await rows.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-key')))).toEqual(keys.map((k) => k.name));
    // Every attempt keyplex counted per key is on its row (from the events), and drawn as bars.
    for (const [i, key] of keys.entries()) expect(Number(await rows.nth(i).getAttribute('data-attempts'))).toBe(key.attempts);
    expect(await chart.locator('rect.ok').count()).toBeGreaterThan(0);
    // The revoked OpenAI key: disabled at its first 401, marked on its own row only.
    const revoked = chart.locator('g.key-row[data-key="openai/openai-4"]');
    expect(await revoked.locator('rect.mark.disabled').count()).toBe(1);
    expect(await chart.locator('rect.mark.disabled').count()).toBe(result.recording!.timeline.marks.filter((m) => m.kind === 'disabled').length);
    // Every cooldown and circuit opening the events reported is drawn: a key's on its row,
    // a deployment's on each key of its provider.
    const marks = result.recording!.timeline.marks;
    expect(await chart.locator('rect.mark.cooldown').count()).toBe(marks.filter((m) => m.kind === 'cooldown').length);
    const keysOf = (provider: string) => result.recording!.timeline.keys.filter((k) => k.provider === provider).length;
    const openings = marks.filter((m) => m.kind === 'circuit-open');
    expect(openings.length).toBeGreaterThan(0);
    expect(openings.every((m) => m.provider === 'anthropic')).toBe(true);
    expect(await chart.locator('rect.mark.circuit-open').count()).toBe(openings.reduce((sum, m) => sum + (m.keyId === undefined ? keysOf(m.provider) : 1), 0));
    expect(await chart.locator('g.key-row[data-key^="anthropic/"] rect.mark.circuit-open').count()).toBeGreaterThan(0);
    expect(await chart.locator('g.legend text').allTextContents()).toEqual(['attempts answered', 'attempts failed', 'cooldown (rate limited)', 'circuit open', 'disabled']);
    await page.close();
  }, 60_000);

  test('shows the spend per model and the cost-routing comparison', async () => {
    const { page } = await browser.open(file);
    const bars = page.locator('svg[data-chart="model-cost"] g.bar');
    expect(await bars.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-model')))).toEqual([...DEMO_MODELS]);
    const spent = (await bars.evaluateAll((gs) => gs.map((g) => Number(g.getAttribute('data-cost'))))).reduce((a, b) => a + b, 0);
    expect(spent).toBeCloseTo(result.keyplexStats.totals.costUsd, 9);
    const routing = page.locator('svg[data-chart="cost-routing"] g.bar');
    expect(await routing.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-run')))).toEqual(['fixed gpt-4.1', 'cost routing']);
    expect(await page.locator('svg[data-chart="cost-routing"] g.legend text').allTextContents()).toEqual([...DEMO_MODELS]);
    await page.close();
  }, 60_000);

  test("takes the README's screenshot (PNG) of the charts", async () => {
    // The code that made docs/report.png (bench/screenshot.ts).
    const png = await screenshotReport(browser, file, 1000);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1000);
    expect(png.readUInt32BE(20)).toBeGreaterThan(800);
  }, 60_000);
});
