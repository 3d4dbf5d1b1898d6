/**
 * The few SVG pieces the HTML report's charts are drawn with: escaping,
 * scales, tick values, elements. Hand-written so that the report needs no
 * charting library and no network: every chart is inline markup.
 */

/** Text for HTML and SVG: `&`, `<`, `>`, `"` and `'` escaped. */
export function esc(value: string | number): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A number for SVG coordinates: at most one decimal. */
export const n = (v: number): string => String(Math.round(v * 10) / 10);

/** Maps [d0, d1] onto [r0, r1], linearly. */
export function linear(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Maps [d0, d1] (both > 0) onto [r0, r1], logarithmically. */
export function logarithmic(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const scale = linear(Math.log10(d0), Math.log10(d1), r0, r1);
  return (v) => scale(Math.log10(Math.max(v, d0)));
}

/** About `count` round tick values from 0 to at least `max`. */
export function linearTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Math.round(v / step) * step);
  return ticks;
}

/** 1-2-5 tick values covering [min, max] (both > 0), for a log scale. */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(min)); decade <= max * 10; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

type Attrs = Record<string, string | number | undefined>;

function attrs(a: Attrs): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${esc(typeof v === 'number' ? n(v) : v!)}"`)
    .join('');
}

/** An SVG element; `body` is markup already escaped. */
export function el(name: string, a: Attrs, body = ''): string {
  return body === '' && name !== 'text' ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${body}</${name}>`;
}

/** A text element (escaped). */
export function text(x: number, y: number, value: string, a: Attrs = {}): string {
  return el('text', { x, y, ...a }, esc(value));
}

/** A hover tooltip for the element it is placed in. */
export const title = (value: string): string => `<title>${esc(value)}</title>`;

/** The `<svg>` root, sized by its viewBox so that it scales with the page. */
export function svg(width: number, height: number, label: string, body: string, a: Attrs = {}): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(label)}"${attrs(a)}>${body}</svg>`;
}

/** A plot area: its place in the SVG. */
export interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Grid lines and labels of a vertical axis (`y` maps values to pixels). */
export function yAxis(frame: Frame, ticks: number[], y: (v: number) => number, label: (v: number) => string): string {
  return ticks
    .map((v) => el('line', { x1: frame.left, x2: frame.left + frame.width, y1: y(v), y2: y(v), class: 'grid' }) + text(frame.left - 6, y(v) + 4, label(v), { 'text-anchor': 'end', class: 'tick' }))
    .join('');
}

/** Tick marks and labels of a horizontal axis along the frame's bottom. */
export function xAxis(frame: Frame, ticks: number[], x: (v: number) => number, label: (v: number) => string): string {
  const bottom = frame.top + frame.height;
  return (
    el('line', { x1: frame.left, x2: frame.left + frame.width, y1: bottom, y2: bottom, class: 'axis' }) +
    ticks.map((v) => el('line', { x1: x(v), x2: x(v), y1: bottom, y2: bottom + 4, class: 'axis' }) + text(x(v), bottom + 16, label(v), { 'text-anchor': 'middle', class: 'tick' })).join('')
  );
}
