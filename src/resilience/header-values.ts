/**
 * The value forms of upstream rate-limit headers, apart from the reader
 * (src/resilience/headers.ts) that applies them: decimals, Go-style
 * durations, RFC 3339 timestamps.
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ns: 1e-6 };
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const DOT = 0x2e;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Where the decimal (`\d+(\.\d+)?`, ASCII digits) that starts at `from` ends;
 * -1 when none starts there. Hand-written: header values are read on every
 * reply, and a regular expression per value cost more than the rest of the read.
 */
function decimalEnd(text: string, from: number): number {
  const n = text.length;
  let i = from;
  while (i < n && isDigit(text.charCodeAt(i))) i++;
  if (i === from) return -1;
  if (i + 1 < n && text.charCodeAt(i) === DOT && isDigit(text.charCodeAt(i + 1))) {
    i += 2;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
  }
  return i;
}

/** Whether the whole (trimmed) text is a non-negative decimal: `\d+(\.\d+)?`. */
export function isDecimal(text: string): boolean {
  return text.length > 0 && decimalEnd(text, 0) === text.length;
}

/** The duration unit at `at` (`ms` before `m`), or undefined. */
function unitAt(text: string, at: number): string | undefined {
  const c = text[at];
  const next = text[at + 1];
  if (c === 'm') return next === 's' ? 'ms' : 'm';
  if (c === 'h' || c === 's') return c;
  if ((c === 'u' || c === 'µ' || c === 'μ' || c === 'n') && next === 's') return c + next;
  return undefined;
}

/**
 * Parses OpenAI's reset durations (Go's `time.Duration` format: `1s`, `6m0s`,
 * `20ms`, `1m30.5s`, `0s`, `2h`, `1h2m`, `0.5s`, and the sub-millisecond units
 * `µs`, `us`, `ns`) to milliseconds; a bare non-negative number is taken as
 * seconds. `undefined` for anything else (empty, negative, unknown units,
 * exponents). Not capped: see {@link parseResetMs}.
 */
export function parseDuration(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (isDecimal(text)) return Number(text) * 1000;
  // One or more `<decimal><unit>` parts, nothing else: `(\d+(\.\d+)?(ms|us|µs|μs|ns|h|m|s))+`.
  let total = 0;
  let at = 0;
  while (at < text.length) {
    const end = decimalEnd(text, at);
    if (end === -1) return undefined;
    const unit = unitAt(text, end);
    if (unit === undefined) return undefined;
    total += Number(text.slice(at, end)) * UNIT_MS[unit]!;
    at = end + unit.length;
  }
  return at > 0 && Number.isFinite(total) ? total : undefined;
}

/**
 * An RFC 3339 timestamp (`2024-05-01T12:00:30Z`, `2024-05-01T12:00:30.25+02:00`)
 * as epoch ms; `undefined` when the text is not one. Stricter than `Date.parse`,
 * which accepts almost anything (`"1"` is the year 2001 to V8).
 */
export function parseRfc3339(value: string): number | undefined {
  const match = RFC3339.exec(value.trim());
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = match;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, Math.min(second, 59));
  if (new Date(ms).getUTCDate() !== day) return undefined; // 2024-02-30
  if (second === 60) ms += 1000; // leap second
  if (fraction) ms += Number(`0${fraction}`) * 1000;
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const offH = Number(zone.slice(1, 3));
    const offM = Number(zone.slice(4, 6));
    if (offH > 23 || offM > 59) return undefined;
    ms -= sign * (offH * 60 + offM) * 60_000;
  }
  return ms;
}
