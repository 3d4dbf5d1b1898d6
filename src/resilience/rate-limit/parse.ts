/**
 * Reading what an upstream answer's rate-limit headers say about a key's
 * windows, for OpenAI-style (`x-ratelimit-*`) and Anthropic-style
 * (`anthropic-ratelimit-*`) providers.
 */
import { parseDuration } from '../headers';

/** One rate-limit window as an answer describes it. Every field is optional: garbage is dropped field by field. */
export interface RateLimitWindow {
  /** The window's capacity per minute (a positive number). */
  limit?: number;
  /** What is left of it now (non-negative). */
  remaining?: number;
  /** Milliseconds from `now` until the window is back to its initial state (non-negative). */
  resetMs?: number;
}

/** What the headers of one answer say about a key's windows. Times are ms from `now`. */
export interface RateLimitSnapshot {
  /** The requests-per-minute window, when any of its headers was usable. */
  requests?: RateLimitWindow;
  /** The tokens-per-minute window (for Anthropic, the tightest of tokens, input and output tokens). */
  tokens?: RateLimitWindow;
}

/** The two dimensions a key is limited in. */
export type RateLimitDimension = 'requests' | 'tokens';

const NUMBER = /^\d+(\.\d+)?$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** A bare number at least this big is a Unix time in seconds (2001-09-09 onwards), not a duration. */
const EPOCH_SECONDS = 1e9;
/** … and at least this big, a Unix time in milliseconds. */
const EPOCH_MS = 1e12;

/** A non-negative decimal count (`"59"`, `"149984"`, `"0.5"`); `undefined` for anything else. */
function parseCount(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!NUMBER.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
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

/**
 * A reset header's value as ms from `now`, whatever form it takes: a duration
 * (`6m0s`, `20ms`, OpenAI's), an RFC 3339 timestamp (Anthropic's), or a Unix
 * time in seconds or ms (some gateways'). A moment in the past is `0`.
 * `undefined` for garbage.
 */
export function parseResetMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (NUMBER.test(text)) {
    const n = Number(text);
    if (n >= EPOCH_MS) return Math.max(0, n - now);
    if (n >= EPOCH_SECONDS) return Math.max(0, n * 1000 - now);
  }
  const duration = parseDuration(text);
  if (duration !== undefined) return Number.isFinite(duration) ? duration : undefined;
  const at = parseRfc3339(text);
  return at === undefined ? undefined : Math.max(0, at - now);
}

/** One window from a header family, e.g. `x-ratelimit-{limit,remaining,reset}-requests`. */
function readWindow(headers: Headers, names: { limit: string; remaining: string; reset: string }, now: number): RateLimitWindow | undefined {
  const window: RateLimitWindow = {};
  const limit = parseCount(headers.get(names.limit));
  if (limit !== undefined && limit > 0) window.limit = limit;
  const remaining = parseCount(headers.get(names.remaining));
  if (remaining !== undefined) window.remaining = remaining;
  const resetMs = parseResetMs(headers.get(names.reset), now);
  if (resetMs !== undefined) window.resetMs = resetMs;
  return Object.keys(window).length > 0 ? window : undefined;
}

/** How tight a window is: what is left, else its capacity; a window with neither ranks loosest. */
function tightness(window: RateLimitWindow): number {
  return window.remaining ?? window.limit ?? Infinity;
}

/**
 * The tighter of several windows of one dimension: the one with the least
 * remaining (else the smallest limit), ties going to the later reset. Windows
 * are taken whole, never mixed field by field.
 */
function tighter(windows: (RateLimitWindow | undefined)[]): RateLimitWindow | undefined {
  let best: RateLimitWindow | undefined;
  for (const window of windows) {
    if (!window) continue;
    if (
      !best ||
      tightness(window) < tightness(best) ||
      (tightness(window) === tightness(best) && (window.resetMs ?? -1) > (best.resetMs ?? -1))
    ) {
      best = window;
    }
  }
  return best;
}

const openai = (dimension: RateLimitDimension) => ({
  limit: `x-ratelimit-limit-${dimension}`,
  remaining: `x-ratelimit-remaining-${dimension}`,
  reset: `x-ratelimit-reset-${dimension}`,
});
const anthropic = (family: string) => ({
  limit: `anthropic-ratelimit-${family}-limit`,
  remaining: `anthropic-ratelimit-${family}-remaining`,
  reset: `anthropic-ratelimit-${family}-reset`,
});
const OPENAI_REQUESTS = openai('requests');
const OPENAI_TOKENS = openai('tokens');
const ANTHROPIC_REQUESTS = anthropic('requests');
const ANTHROPIC_TOKENS = anthropic('tokens');
const ANTHROPIC_INPUT_TOKENS = anthropic('input-tokens');
const ANTHROPIC_OUTPUT_TOKENS = anthropic('output-tokens');

/**
 * Reads what one answer's headers say about a key's rate-limit windows.
 *
 * - OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as
 *   durations (`1s`, `6m0s`, `20ms`, `1m30.5s`, `0s`).
 * - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
 *   resets as RFC 3339 timestamps, turned into ms from `now` (a past reset is `0`).
 *   `tokens`, `input-tokens` and `output-tokens` combine into `tokens` by taking
 *   the tightest window whole (least remaining, else smallest limit).
 * - Both families present (a gateway passing both on): the tighter window of each
 *   dimension wins, by the same rule.
 * - A reset may also be a Unix time in seconds or ms (some gateways).
 *
 * Garbage values are ignored field by field: a limit must be a positive decimal,
 * a remaining a non-negative one, a reset one of the forms above. A dimension
 * with no usable field is absent.
 *
 * @param now The clock, in epoch ms, that RFC 3339 resets are measured from.
 */
export function parseRateLimitHeaders(headers: Headers, now: number): RateLimitSnapshot {
  const snapshot: RateLimitSnapshot = {};
  if (!hasRateLimitHeaders(headers)) return snapshot;
  const requests = tighter([readWindow(headers, OPENAI_REQUESTS, now), readWindow(headers, ANTHROPIC_REQUESTS, now)]);
  if (requests) snapshot.requests = requests;
  const tokens = tighter([
    readWindow(headers, OPENAI_TOKENS, now),
    readWindow(headers, ANTHROPIC_TOKENS, now),
    readWindow(headers, ANTHROPIC_INPUT_TOKENS, now),
    readWindow(headers, ANTHROPIC_OUTPUT_TOKENS, now),
  ]);
  if (tokens) snapshot.tokens = tokens;
  return snapshot;
}

/** One pass over the names: most answers of most providers carry none of these, and 18 lookups cost more. */
function hasRateLimitHeaders(headers: Headers): boolean {
  let found = false;
  headers.forEach((_value, name) => {
    if (!found && (name.startsWith('x-ratelimit-') || name.startsWith('anthropic-ratelimit-'))) found = true;
  });
  return found;
}
