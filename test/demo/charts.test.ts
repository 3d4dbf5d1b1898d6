/**
 * The report's key chart against a timeline made by hand: every cooldown,
 * disable and circuit opening lands on the right row, over the right span
 * (no browser needed: the SVG is a string).
 */
import { expect, test } from 'vitest';
import { keyLoadChart, latencyChart } from '../../src/demo/charts';
import { esc, linearTicks, logTicks } from '../../src/demo/svg';
import type { Timeline } from '../../src/demo/timeline';

const timeline: Timeline = {
  durationMs: 1000,
  keys: [
    { provider: 'a', keyId: 'a-1' },
    { provider: 'a', keyId: 'a-2' },
    { provider: 'b', keyId: 'b-1' },
  ],
  attempts: { 'a/a-1': [{ t: 10, ok: true }, { t: 20, ok: false }], 'b/b-1': [{ t: 500, ok: true }] },
  marks: [
    { t: 100, kind: 'cooldown', provider: 'a', keyId: 'a-1', ms: 200 },
    { t: 300, kind: 'disabled', provider: 'a', keyId: 'a-2', detail: 'unauthorized' },
    { t: 400, kind: 'circuit-open', provider: 'b', keyId: 'b-1', ms: 30_000, detail: 'failures' },
    { t: 450, kind: 'circuit-closed', provider: 'b', keyId: 'b-1' },
    { t: 600, kind: 'circuit-open', provider: 'a', keyId: undefined, ms: 100, detail: 'gpt-x failures' },
  ],
  costs: [],
};

/** The markup of one key's row. */
function row(svg: string, key: string): string {
  const start = svg.indexOf(`data-key="${key}"`);
  return svg.slice(start, svg.indexOf('</g>', start));
}

const widthOf = (markup: string, kind: string) => Number(new RegExp(`<rect x="[\\d.]+" y="[\\d.]+" width="([\\d.]+)"[^>]*class="mark ${kind}"`).exec(markup)?.[1]);

test('each mark is drawn on its own row, over its span; a deployment circuit on every key of its provider', () => {
  const svg = keyLoadChart(timeline);
  const a1 = row(svg, 'a/a-1');
  const a2 = row(svg, 'a/a-2');
  const b1 = row(svg, 'b/b-1');
  expect(a1).toContain('data-attempts="2"');
  expect(a1.match(/class="mark cooldown"/g)).toHaveLength(1);
  expect(a2).not.toContain('mark cooldown');
  // 640 px for 1000 ms: a 200 ms cooldown is 128 px wide.
  expect(widthOf(a1, 'cooldown')).toBeCloseTo(128, 0);
  // Disabled from 300 ms to the end: 70% of the row.
  expect(a2.match(/class="mark disabled"/g)).toHaveLength(1);
  expect(widthOf(a2, 'disabled')).toBeCloseTo(448, 0);
  // The key circuit is drawn until it closed (50 ms), not for its 30 s open time.
  expect(widthOf(b1, 'circuit-open')).toBeCloseTo(32, 0);
  // The deployment circuit of provider a: on both of a's keys, not on b's.
  expect(a1.match(/class="mark circuit-open"/g)).toHaveLength(1);
  expect(a2.match(/class="mark circuit-open"/g)).toHaveLength(1);
  expect(b1.match(/class="mark circuit-open"/g)).toHaveLength(1);
  expect(svg).toContain('<title>a-2: disabled at 0.30 s (unauthorized)</title>');
  expect(a1).toContain('class="failed"');
  expect(b1).not.toContain('class="failed"');
});

test('the latency curve of a run with errors levels off at the share it answered', () => {
  const svg = latencyChart([{ label: 'half', color: '#000', latenciesMs: [10, 20, 30, 40], requests: 8 }]);
  expect(svg).toContain('data-points="4"');
  expect(svg).toContain('>50%</text>');
});

test('labels are escaped; ticks are round', () => {
  expect(esc(`<a href="x">&'`)).toBe('&#60;a href=&#34;x&#34;&#62;&#38;&#39;');
  expect(linearTicks(1.9, 8)).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]);
  expect(logTicks(3, 700)).toEqual([5, 10, 20, 50, 100, 200, 500]);
});
