/**
 * The HTML report's three charts, as inline SVG strings: the latency
 * distribution of each run, each key's load over time with its cooldowns,
 * disables and circuit openings, and the spend per model.
 */
import type { CostComparison } from './cost';
import { el, esc, linear, linearTicks, logarithmic, logTicks, n, svg, text, title, xAxis, yAxis, type Frame } from './svg';
import { keyName, type KeyMark, type ModelCost, type Timeline } from './timeline';

/** One run's latencies, as the latency chart draws it. */
export interface LatencySeries {
  label: string;
  color: string;
  /** Latencies of the successful requests, ms. */
  latenciesMs: readonly number[];
  /** Every request of the run, answered or not: the curve ends at the share answered. */
  requests: number;
}

/** Every chart's width in SVG units: the same, so that their text is the same size on the page. */
const WIDTH = 960;

const msLabel = (v: number) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`);
const usd = (v: number) => `$${v.toFixed(v < 0.01 ? 5 : v < 1 ? 4 : 2)}`;

function legend(x: number, y: number, items: { label: string; color: string; kind?: 'line' | 'box'; opacity?: number }[], step = 20): string {
  const rows = items.map((item, i) => {
    const cy = y + i * step;
    const swatch =
      item.kind === 'line'
        ? el('line', { x1: x, x2: x + 18, y1: cy, y2: cy, stroke: item.color, 'stroke-width': 3 })
        : el('rect', { x, y: cy - 6, width: 18, height: 12, fill: item.color, 'fill-opacity': item.opacity, class: 'swatch' });
    return swatch + text(x + 24, cy + 4, item.label);
  });
  return `<g class="legend">${rows.join('')}</g>`;
}

/** The step path of one run's cumulative distribution, at most ~`points` vertices. */
function cdfPath(series: LatencySeries, x: (v: number) => number, y: (v: number) => number, right: number, points = 300): string {
  const sorted = [...series.latenciesMs].sort((a, b) => a - b);
  const stride = Math.max(1, Math.floor(sorted.length / points));
  let d = `M${n(x(sorted[0] ?? 0))},${n(y(0))}`;
  for (let i = 0; i < sorted.length; i += stride) d += `L${n(x(sorted[i]!))},${n(y((i + 1) / series.requests))}`;
  const last = sorted.length / series.requests;
  if (sorted.length > 0) d += `L${n(x(sorted[sorted.length - 1]!))},${n(y(last))}`;
  return `${d}L${n(right)},${n(y(last))}`;
}

/**
 * The latency distribution of each run: the share of all its requests
 * answered within a given time (log scale). A run with errors never reaches
 * 100%: its curve levels off at the share it answered.
 */
export function latencyChart(series: readonly LatencySeries[]): string {
  const frame: Frame = { left: 60, top: 14, width: 640, height: 240 };
  const all = series.flatMap((s) => s.latenciesMs);
  const min = Math.max(0.5, Math.min(...all, 1));
  const max = Math.max(...all, min * 10);
  const x = logarithmic(min, max, frame.left, frame.left + frame.width);
  const y = linear(0, 1, frame.top + frame.height, frame.top);
  const right = frame.left + frame.width;
  const lines = series.map((s) => {
    const answered = s.latenciesMs.length / s.requests;
    const end = text(right + 4, y(answered) + 4, `${(answered * 100).toFixed(0)}%`, { class: 'tick', fill: s.color });
    return `<g class="series" data-series="${esc(s.label)}" data-points="${s.latenciesMs.length}">${el('path', { d: cdfPath(s, x, y, right), fill: 'none', stroke: s.color, 'stroke-width': 2.5 }, title(`${s.label}: ${s.latenciesMs.length} of ${s.requests} requests answered`))}${end}</g>`;
  });
  const body =
    yAxis(frame, [0, 0.25, 0.5, 0.75, 1], y, (v) => `${v * 100}%`) +
    xAxis(frame, logTicks(min, max), x, msLabel) +
    text(frame.left + frame.width / 2, frame.top + frame.height + 34, 'latency (log scale)', { 'text-anchor': 'middle', class: 'axis-label' }) +
    text(14, frame.top + frame.height / 2, 'requests answered within', { transform: `rotate(-90 14 ${frame.top + frame.height / 2})`, 'text-anchor': 'middle', class: 'axis-label' }) +
    lines.join('') +
    legend(750, 40, series.map((s) => ({ label: s.label, color: s.color, kind: 'line' as const })));
  return svg(WIDTH, 300, 'Latency distribution of each run', body, { 'data-chart': 'latency' });
}

const MARK_OPACITY = 0.45;
const MARK_STYLE: Record<'cooldown' | 'disabled' | 'circuit-open', { color: string; label: string }> = {
  cooldown: { color: '#f4a259', label: 'cooldown (rate limited)' },
  'circuit-open': { color: '#8e6bbf', label: 'circuit open' },
  disabled: { color: '#c0392b', label: 'disabled' },
};

/** The marks drawn on one key's row: its own, and its provider's deployment circuits. */
function rowMarks(timeline: Timeline, provider: string, keyId: string, x: (t: number) => number, top: number, height: number): string {
  const end = timeline.durationMs;
  const closes = (m: KeyMark) => timeline.marks.find((c) => c.kind === 'circuit-closed' && c.t > m.t && c.provider === m.provider && c.keyId === m.keyId)?.t;
  const mine = timeline.marks.filter((m) => m.provider === provider && (m.keyId === keyId || (m.keyId === undefined && m.kind === 'circuit-open')));
  return mine
    .map((m) => {
      if (m.kind === 'cooldown' || m.kind === 'circuit-open') {
        const until = Math.min(end, m.kind === 'circuit-open' ? (closes(m) ?? m.t + (m.ms ?? 0)) : m.t + (m.ms ?? 0));
        const tip = `${keyId}: ${MARK_STYLE[m.kind].label} at ${(m.t / 1000).toFixed(2)} s for ${Math.round(until - m.t)} ms${m.detail ? ` (${m.detail})` : ''}`;
        const width = Math.max(2, x(until) - x(m.t));
        return el('rect', { x: x(m.t), y: top, width, height, fill: MARK_STYLE[m.kind].color, 'fill-opacity': MARK_OPACITY, class: `mark ${m.kind}` }, title(tip));
      }
      if (m.kind === 'disabled') {
        const tip = `${keyId}: disabled at ${(m.t / 1000).toFixed(2)} s (${m.detail ?? ''})`;
        return (
          el('rect', { x: x(m.t), y: top, width: Math.max(0, x(end) - x(m.t)), height, fill: 'url(#disabled-hatch)', class: 'mark disabled' }, title(tip)) +
          el('line', { x1: x(m.t), x2: x(m.t), y1: top - 1, y2: top + height + 1, stroke: MARK_STYLE.disabled.color, 'stroke-width': 2.5 })
        );
      }
      return '';
    })
    .join('');
}

/** One key's attempts per time bucket: answered (bottom) and failed (stacked on top). */
function rowBars(attempts: readonly { t: number; ok: boolean }[], buckets: number, bucketMs: number, x: (t: number) => number, base: number, scale: (count: number) => number): string {
  const ok = new Array<number>(buckets).fill(0);
  const failed = new Array<number>(buckets).fill(0);
  for (const a of attempts) (a.ok ? ok : failed)[Math.min(buckets - 1, Math.floor(a.t / bucketMs))]! += 1;
  let bars = '';
  for (let b = 0; b < buckets; b++) {
    const x0 = x(b * bucketMs) + 0.5;
    const width = Math.max(1, x((b + 1) * bucketMs) - x(b * bucketMs) - 1);
    if (ok[b]! > 0) bars += el('rect', { x: x0, y: base - scale(ok[b]!), width, height: scale(ok[b]!), class: 'ok' });
    if (failed[b]! > 0) bars += el('rect', { x: x0, y: base - scale(ok[b]! + failed[b]!), width, height: scale(failed[b]!), class: 'failed' });
  }
  return bars;
}

/** Each key's attempts over the keyplex run, one row per key, with its cooldowns, disable and circuit openings. */
export function keyLoadChart(timeline: Timeline): string {
  const rowHeight = 24;
  const frame: Frame = { left: 130, top: 8, width: 640, height: timeline.keys.length * rowHeight };
  const total = Object.values(timeline.attempts).reduce((sum, list) => sum + list.length, 0);
  const buckets = Math.min(60, Math.max(12, Math.round(Math.sqrt(total))));
  const duration = Math.max(timeline.durationMs, 1);
  const bucketMs = duration / buckets;
  const x = linear(0, duration, frame.left, frame.left + frame.width);
  const counts = timeline.keys.map((k) => timeline.attempts[keyName(k.provider, k.keyId)] ?? []);
  let peak = 1;
  for (const list of counts) {
    const per = new Array<number>(buckets).fill(0);
    for (const a of list) peak = Math.max(peak, ++per[Math.min(buckets - 1, Math.floor(a.t / bucketMs))]!);
  }
  const scale = (count: number) => (count / peak) * (rowHeight - 6);
  const rows = timeline.keys.map((k, i) => {
    const top = frame.top + i * rowHeight;
    const attempts = counts[i]!;
    const separator = i > 0 && timeline.keys[i - 1]!.provider !== k.provider ? el('line', { x1: 0, x2: frame.left + frame.width, y1: top, y2: top, class: 'axis' }) : '';
    return (
      `<g class="key-row" data-key="${esc(keyName(k.provider, k.keyId))}" data-attempts="${attempts.length}">` +
      separator +
      text(frame.left - 8, top + rowHeight / 2 + 4, k.keyId, { 'text-anchor': 'end', class: 'tick' }) +
      rowMarks(timeline, k.provider, k.keyId, x, top + 2, rowHeight - 4) +
      rowBars(attempts, buckets, bucketMs, x, top + rowHeight - 2, scale) +
      '</g>'
    );
  });
  const bottom = frame.top + frame.height;
  const defs = `<defs><pattern id="disabled-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f3d3cf"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c0392b" stroke-width="1.5" stroke-opacity="0.5"/></pattern></defs>`;
  const body =
    defs +
    rows.join('') +
    xAxis(frame, linearTicks(duration / 1000, 8).filter((s) => s * 1000 <= duration * 1.001), (s) => x(s * 1000), (s) => `${s} s`) +
    text(frame.left + frame.width / 2, bottom + 34, `time since the keyplex run started (bars: attempts per ${Math.round(bucketMs)} ms, tallest = ${peak})`, { 'text-anchor': 'middle', class: 'axis-label' }) +
    legend(frame.left + frame.width + 20, frame.top + 10, [
      { label: 'attempts answered', color: '#4c8bbf' },
      { label: 'attempts failed', color: '#d1495b' },
      { label: MARK_STYLE.cooldown.label, color: MARK_STYLE.cooldown.color, opacity: MARK_OPACITY },
      { label: MARK_STYLE['circuit-open'].label, color: MARK_STYLE['circuit-open'].color, opacity: MARK_OPACITY },
      { label: MARK_STYLE.disabled.label, color: 'url(#disabled-hatch)' },
    ]);
  return svg(WIDTH, bottom + 44, "Each key's load over time", body, { 'data-chart': 'keys' });
}

export const MODEL_COLORS = ['#2a9d8f', '#e76f51', '#457b9d', '#8e6bbf', '#e9c46a', '#6c757d'];

/** Spend per model in the keyplex run, one bar each, with requests and cost per 1M tokens. */
export function modelCostChart(costs: readonly ModelCost[]): string {
  const frame: Frame = { left: 150, top: 8, width: 440, height: costs.length * 30 };
  const max = Math.max(...costs.map((c) => c.costUsd), 1e-9);
  const x = linear(0, max, frame.left, frame.left + frame.width);
  const bars = costs.map((c, i) => {
    const top = frame.top + i * 30;
    const perMillion = c.tokens > 0 ? (c.costUsd / c.tokens) * 1e6 : 0;
    return (
      `<g class="bar" data-model="${esc(c.model)}" data-cost="${c.costUsd}">` +
      text(frame.left - 8, top + 19, c.model, { 'text-anchor': 'end' }) +
      el('rect', { x: frame.left, y: top + 5, width: Math.max(1, x(c.costUsd) - frame.left), height: 20, fill: MODEL_COLORS[i % MODEL_COLORS.length] }, title(`${c.model}: ${usd(c.costUsd)}`)) +
      text(x(c.costUsd) + 6, top + 19, `${usd(c.costUsd)} · ${c.requests} requests · ${usd(perMillion)} per 1M tokens`, { class: 'tick' }) +
      '</g>'
    );
  });
  return svg(WIDTH, frame.top + frame.height + 10, 'Spend per model in the keyplex run', bars.join(''), { 'data-chart': 'model-cost' });
}

/** The cost comparison: each run's spend as one bar split by the model that answered. */
export function costRoutingChart(comparison: CostComparison): string {
  const models = comparison.alias.models;
  const frame: Frame = { left: 150, top: 8, width: 600, height: comparison.runs.length * 36 };
  const max = Math.max(...comparison.runs.map((r) => r.costUsd), 1e-9);
  const x = linear(0, max, frame.left, frame.left + frame.width);
  const bars = comparison.runs.map((run, i) => {
    const top = frame.top + i * 36;
    let at = 0;
    const parts = models.map((model, m) => {
      const share = run.models.find((s) => s.model === model);
      if (!share || share.costUsd <= 0) return '';
      const part = el('rect', { x: x(at), y: top + 6, width: Math.max(1, x(at + share.costUsd) - x(at)), height: 24, fill: MODEL_COLORS[m % MODEL_COLORS.length] }, title(`${run.label}: ${model} answered ${share.requests} requests for ${usd(share.costUsd)}`));
      at += share.costUsd;
      return part;
    });
    return `<g class="bar" data-run="${esc(run.label)}" data-cost="${run.costUsd}">${text(frame.left - 8, top + 23, run.label, { 'text-anchor': 'end' })}${parts.join('')}${text(x(run.costUsd) + 6, top + 23, usd(run.costUsd), { class: 'tick' })}</g>`;
  });
  const body = bars.join('') + legendRow(frame.left, frame.top + frame.height + 14, models);
  return svg(WIDTH, frame.top + frame.height + 26, 'Spend of a fixed model against cost routing, by model', body, { 'data-chart': 'cost-routing' });
}

/** The models' colours in one row. */
function legendRow(x: number, y: number, models: readonly string[]): string {
  let at = x;
  const items = models.map((model, i) => {
    const item = el('rect', { x: at, y: y - 6, width: 12, height: 12, fill: MODEL_COLORS[i % MODEL_COLORS.length] }) + text(at + 17, y + 4, model);
    at += 40 + model.length * 7;
    return item;
  });
  return `<g class="legend">${items.join('')}</g>`;
}
