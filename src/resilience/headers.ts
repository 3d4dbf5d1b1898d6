/**
 * Reading retry and reset hints from upstream headers.
 */

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|us|µs|μs|ns|h|m|s)/g;
const DURATION = /^(\d+(\.\d+)?(ms|us|µs|μs|ns|h|m|s))+$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ns: 1e-6 };

/**
 * Parses OpenAI's reset durations (Go's `time.Duration` format: `1s`, `6m0s`,
 * `20ms`, `1m30.5s`, `0s`, `2h`, `0.5s`, and the sub-millisecond units `µs`,
 * `us`, `ns`) to milliseconds; a bare non-negative number is taken as seconds.
 * `undefined` for anything else (empty, negative, unknown units, exponents).
 */
export function parseDuration(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) total += Number(amount) * UNIT_MS[unit!]!;
  return total;
}

/**
 * The wait an answer asks for, in ms: `retry-after-ms`, then `retry-after`
 * (seconds or an HTTP date; a date in the past is 0). `undefined` when neither
 * is usable (absent, negative, or garbage).
 */
export function retryAfterMs(headers: Headers, now: number): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return value;
  }
  const after = headers.get('retry-after');
  if (after !== null && after.trim() !== '') {
    const seconds = Number(after);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    // HTTP dates (IMF-fixdate, RFC 850, asctime) all open with a day name; without
    // this check Date.parse would read garbage such as `-1` as a year.
    const date = /^[A-Za-z]{3}/.test(after.trim()) ? Date.parse(after) : NaN;
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  return undefined;
}

/**
 * How long a rate-limited key should rest: the explicit retry hint, else the
 * reset of whichever window (requests, tokens) the answer says is exhausted.
 */
export function rateLimitResetMs(headers: Headers, now: number): number | undefined {
  const explicit = retryAfterMs(headers, now);
  if (explicit !== undefined) return explicit;
  let reset: number | undefined;
  for (const window of ['requests', 'tokens'] as const) {
    const remaining = headers.get(`x-ratelimit-remaining-${window}`);
    if (remaining !== null && Number(remaining) > 0) continue;
    const ms = parseDuration(headers.get(`x-ratelimit-reset-${window}`));
    if (ms !== undefined) reset = Math.max(reset ?? 0, ms);
  }
  return reset;
}
