/**
 * The one reader of upstream rate-limit and retry headers. The cooldown of a
 * 429, the key's rate limiter and the shared store all read an answer through
 * {@link parseRateLimitHeaders} (or the helpers below, built on it), so they
 * never disagree about what an answer said.
 *
 * Every value an upstream supplies is bounded (see {@link RATE_LIMIT_CAPS}):
 * a wait is never longer than an hour, a window never longer than a day, a
 * limit never below one unit; when a bound applied the result says
 * `capped: true`, for the pipeline to report.
 */
import { headerEntries, type HeaderEntries } from '../header-list';
import { isDecimal, parseDuration, parseRfc3339 } from './header-values';
import { FAMILIES, type RateLimitDimension } from './header-families';
import { readRateLimitFields } from './ratelimit-fields';

export type { HeaderEntries } from '../header-list';
export { parseDuration, parseRfc3339 } from './header-values';

/** The bounds applied to upstream-supplied values. */
export const RATE_LIMIT_CAPS = Object.freeze({
  /** The longest wait (retry-after, a 429's reset) an answer can impose: 1 hour. */
  maxWaitMs: 3_600_000,
  /** The longest reset an answer can describe (a per-day window): 1 day. */
  maxResetMs: 86_400_000,
  /** The smallest limit an answer can set: 1 unit per window (a limit of 0.0001 would park a key for ever). */
  minLimit: 1,
});

/** One rate-limit window as an answer describes it. Every field is optional: garbage is dropped field by field. */
export interface RateLimitWindow {
  /** The window's capacity, in units per window (a number ≥ 1; its period is not stated by headers). */
  limit?: number;
  /** What was left of it when the upstream answered (non-negative, at most the limit). */
  remaining?: number;
  /** Milliseconds from `now` until the window is back to its initial state (0 … 1 day). */
  resetMs?: number;
  /** The window's period in ms, when the answer states it (a header named per minute or per day, an IETF policy's `w`); at most 1 day. */
  periodMs?: number;
}

/** What the headers of one answer say about a key's windows. Times are ms from `now`. */
export interface RateLimitSnapshot {
  /** The requests window, when any of its headers was usable. */
  requests?: RateLimitWindow;
  /** The tokens window (the tightest of tokens, input, output, prompt and generated tokens). */
  tokens?: RateLimitWindow;
  /** `retry-after-ms`, else `retry-after` (seconds or an HTTP date), in ms from `now` (0 … 1 hour). */
  retryAfterMs?: number;
  /** Set when a value was out of bounds and was capped (see {@link RATE_LIMIT_CAPS}). */
  capped?: true;
}

export type { RateLimitDimension } from './header-families';

/** A number as `retry-after` may write it: a decimal, possibly with an exponent (`1e12`). */
const SCIENTIFIC = /^\d+(\.\d+)?(e\+?\d+)?$/i;
/** A bare number at least this big is a Unix time in seconds (2001-09-09 onwards), not a duration. */
const EPOCH_SECONDS = 1e9;
/** … and at least this big, a Unix time in milliseconds. */
const EPOCH_MS = 1e12;

/**
 * A reset header's value as ms from `now`, uncapped, whatever form it takes:
 * a duration (`6m0s`, `20ms`, OpenAI's; a bare number is seconds), an RFC 3339
 * timestamp (Anthropic's), or a Unix time in seconds or ms (OpenRouter's, some
 * gateways'). A moment in the past is `0`. `undefined` for garbage.
 */
function resetValueMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (isDecimal(text)) {
    const n = Number(text);
    if (n >= EPOCH_SECONDS) momentRead = true;
    if (n >= EPOCH_MS) return Math.max(0, n - now);
    if (n >= EPOCH_SECONDS) return Math.max(0, n * 1000 - now);
  }
  const duration = parseDuration(text);
  if (duration !== undefined) return duration;
  // RFC 3339 (Anthropic's), else an HTTP date (the older Cloudflare API's `x-ratelimit-reset`).
  const at = parseRfc3339(text) ?? httpDate(text);
  if (at !== undefined) momentRead = true;
  return at === undefined ? undefined : Math.max(0, at - now);
}

/**
 * An HTTP date (IMF-fixdate, RFC 850, asctime) as epoch ms, else undefined.
 * All three open with a day name; without that check `Date.parse` would read
 * garbage such as `-1` as a year.
 */
function httpDate(text: string): number | undefined {
  const at = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(at) ? undefined : at;
}

/** Set when a value read since it was last cleared was a moment (its meaning depends on `now`: the snapshot is not reused). */
let momentRead = false;

/**
 * A reset header's value as ms from `now` (see the forms above), capped at
 * {@link RATE_LIMIT_CAPS}`.maxResetMs` (1 day). `undefined` for garbage.
 */
export function parseResetMs(value: string | null, now: number): number | undefined {
  const ms = resetValueMs(value, now);
  return ms === undefined ? undefined : Math.min(ms, RATE_LIMIT_CAPS.maxResetMs);
}

/** A `retry-after` value (seconds, or an HTTP date) in ms from `now`, uncapped; `undefined` when unusable. */
function retryAfterValueMs(after: string, now: number): number | undefined {
  const text = after.trim();
  if (text === '') return undefined;
  if (SCIENTIFIC.test(text)) {
    const seconds = Number(text);
    return Number.isFinite(seconds) ? seconds * 1000 : Number.MAX_VALUE;
  }
  const date = httpDate(text);
  if (date === undefined) return undefined;
  momentRead = true;
  return Math.max(0, date - now);
}

/** The explicit wait an answer asks for, uncapped: `retry-after-ms`, then `retry-after` (each `null` when absent). */
function explicitWaitMs(ms: string | null, after: string | null, now: number): number | undefined {
  if (ms !== null && SCIENTIFIC.test(ms.trim())) {
    const value = Number(ms.trim());
    return Number.isFinite(value) ? value : Number.MAX_VALUE;
  }
  return after === null ? undefined : retryAfterValueMs(after, now);
}

/** A non-negative decimal count (`"59"`, `"149984"`, `"0.5"`); `undefined` for anything else. */
function parseCount(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!isDecimal(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** One window from a header family's three values (`null` when absent); `capped` is set on `into` when a bound applied. */
function readWindow(limitValue: string | null, remainingValue: string | null, resetValue: string | null, periodMs: number | undefined, now: number, into: { capped?: true }): RateLimitWindow | undefined {
  if (limitValue === null && remainingValue === null && resetValue === null) return undefined;
  return boundWindow(parseCount(limitValue), parseCount(remainingValue), resetValueMs(resetValue, now), periodMs, into);
}

/** A window of these values (`undefined`: not stated), within {@link RATE_LIMIT_CAPS}; `capped` set on `into` when a bound applied. */
function boundWindow(limit: number | undefined, remaining: number | undefined, resetMs: number | undefined, periodMs: number | undefined, into: { capped?: true }): RateLimitWindow | undefined {
  const window: RateLimitWindow = {};
  if (limit !== undefined && limit > 0) {
    if (limit < RATE_LIMIT_CAPS.minLimit) into.capped = true;
    window.limit = Math.max(limit, RATE_LIMIT_CAPS.minLimit);
  }
  if (remaining !== undefined) window.remaining = window.limit === undefined ? remaining : Math.min(remaining, window.limit);
  if (resetMs !== undefined) {
    if (resetMs > RATE_LIMIT_CAPS.maxResetMs) into.capped = true;
    window.resetMs = Math.min(resetMs, RATE_LIMIT_CAPS.maxResetMs);
  }
  if (window.limit === undefined && window.remaining === undefined && window.resetMs === undefined) return undefined;
  if (periodMs !== undefined) {
    if (periodMs > RATE_LIMIT_CAPS.maxResetMs) into.capped = true;
    window.periodMs = Math.min(periodMs, RATE_LIMIT_CAPS.maxResetMs);
  }
  return window;
}

/** How tight a window is: what is left, else its capacity; a window with neither ranks loosest. */
function tightness(window: RateLimitWindow): number {
  return window.remaining ?? window.limit ?? Infinity;
}

/**
 * The tighter of two windows of one dimension (`best` so far, then the next
 * family's): the one with the least remaining (else the smallest limit), ties
 * going to the later reset. Windows are taken whole, never mixed field by
 * field — but for the period: two families describing one window (the same
 * limit and remaining: Mistral's `ratelimitbysize-*` and `…-minute`) lend the
 * kept one the period the other states.
 */
function tighter(best: RateLimitWindow | undefined, window: RateLimitWindow | undefined): RateLimitWindow | undefined {
  if (!window) return best;
  if (!best) return window;
  const kept = tightness(window) < tightness(best) || (tightness(window) === tightness(best) && (window.resetMs ?? -1) > (best.resetMs ?? -1)) ? window : best;
  const other = kept === window ? best : window;
  if (kept.periodMs === undefined && other.periodMs !== undefined && kept.limit === other.limit && kept.remaining === other.remaining) kept.periodMs = other.periodMs;
  return kept;
}


/**
 * Reads what one answer's headers say about a key's rate-limit windows and
 * the wait it asks for. Provider shapes:
 *
 * - OpenAI, Azure OpenAI, Groq, Fireworks: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`,
 *   resets as durations (`1s`, `6m0s`, `20ms`, `1m30.5s`). Groq's requests
 *   window is per day, its tokens window per minute: the period is not in the
 *   headers, the limiter learns it (see `PeriodLearner`).
 * - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
 *   resets as RFC 3339 timestamps.
 * - OpenRouter, Together and gateways: unsuffixed `x-ratelimit-{limit,remaining,reset}`
 *   (requests), resets in seconds, as Unix times (seconds or ms) or HTTP dates;
 *   Together's `x-tokenlimit-*` (tokens).
 * - Cerebras: `x-ratelimit-{limit,remaining,reset}-requests-day` and
 *   `…-tokens-minute` (resets in seconds): the names state the periods.
 * - Mistral: `ratelimitbysize-{limit,remaining,reset}` and
 *   `x-ratelimitbysize-{limit,remaining}-minute` (tokens per minute).
 * - The IETF `RateLimit` fields, every draft's form (ratelimit-fields.ts):
 *   `RateLimit-Limit/-Remaining/-Reset`, `RateLimit`, `RateLimit-Policy`
 *   (its `w` states the period).
 * - `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
 *
 * Several families of one dimension: the tightest window wins whole (least
 * remaining, else the smallest limit). Garbage is ignored field by field; a
 * dimension with no usable field is absent. Bounds ({@link RATE_LIMIT_CAPS})
 * apply, and set `capped`.
 *
 * @param headers The answer's headers, or their entries already read (header-list.ts).
 * @param now The clock, in epoch ms, that timestamps are measured from.
 */
export function parseRateLimitHeaders(headers: Headers | HeaderEntries, now: number): RateLimitSnapshot {
  const values: HeaderValues = { slots: NO_VALUES, written: WRITTEN, count: 0, windows: false, ietf: false, explicit: false };
  try {
    // Any other Headers (another realm's, a fetch polyfill's) is read by iterating it.
    readValues(Array.isArray(headers) ? (headers as HeaderEntries) : headerEntries(headers as Headers), values);
    if (values.slots === NO_VALUES) return NO_SNAPSHOT;
    const known = remembered(values);
    if (known !== undefined) return known;
    momentRead = false;
    return remember(values, snapshotOf(values, now));
  } finally {
    if (values.slots === SCRATCH) {
      // Only the slots written are emptied: the cost follows the headers an answer has, not how many names are known.
      for (let i = 0; i < values.count; i++) SCRATCH[WRITTEN[i]!] = null;
      scratchFree = true;
    }
  }
}

/** The snapshot of an answer without any of the headers (shared, frozen). */
const NO_SNAPSHOT: RateLimitSnapshot = Object.freeze({});

/**
 * The last answer's headers (the slots it wrote, in its order, and their
 * values) and its snapshot, frozen: the next answer with the very same
 * headers and strings gets the same snapshot without a parse (OpenAI's
 * limits, and often its resets, repeat from one reply to the next). Only a
 * snapshot of durations and counts is kept: one read from a moment (an RFC 3339
 * or Unix reset, an HTTP date) depends on `now`.
 */
const LAST_SLOTS: number[] = [];
const LAST_VALUES: (string | null)[] = [];
let lastCount = 0;
let lastSnapshot: RateLimitSnapshot | undefined;

/** The last snapshot when `values` are the same headers with the same strings as the answer it was read from. */
function remembered(values: HeaderValues): RateLimitSnapshot | undefined {
  if (lastSnapshot === undefined || values.count !== lastCount) return undefined;
  for (let i = 0; i < values.count; i++) {
    const slot = values.written[i]!;
    if (slot !== LAST_SLOTS[i] || values.slots[slot] !== LAST_VALUES[i]) return undefined;
  }
  return lastSnapshot;
}

/** Keeps `snapshot` (frozen) for answers with the same headers as `values`, unless a moment was read for it. */
function remember(values: HeaderValues, snapshot: RateLimitSnapshot): RateLimitSnapshot {
  if (momentRead) {
    lastSnapshot = undefined;
    return snapshot;
  }
  lastCount = values.count;
  for (let i = 0; i < values.count; i++) {
    LAST_SLOTS[i] = values.written[i]!;
    LAST_VALUES[i] = values.slots[values.written[i]!]!;
  }
  if (snapshot.requests) Object.freeze(snapshot.requests);
  if (snapshot.tokens) Object.freeze(snapshot.tokens);
  return (lastSnapshot = Object.freeze(snapshot));
}

/** The snapshot of one answer's header values. */
function snapshotOf(values: HeaderValues, now: number): RateLimitSnapshot {
  const snapshot: RateLimitSnapshot = {};
  const wait = values.explicit ? explicitWaitMs(values.slots[RETRY_AFTER_MS]!, values.slots[RETRY_AFTER]!, now) : undefined;
  if (wait !== undefined) {
    if (wait > RATE_LIMIT_CAPS.maxWaitMs) snapshot.capped = true;
    snapshot.retryAfterMs = Math.min(wait, RATE_LIMIT_CAPS.maxWaitMs);
  }
  if (!values.windows) return snapshot;
  const slots = values.slots;
  for (const dimension of DIMENSIONS) {
    let window: RateLimitWindow | undefined;
    for (const family of FAMILY_SLOTS[dimension]) {
      window = tighter(window, readWindow(slots[family]!, slots[family + 1]!, slots[family + 2]!, FAMILY_PERIOD[family], now, snapshot));
    }
    if (window) snapshot[dimension] = window;
  }
  if (!values.ietf) return snapshot;
  readRateLimitFields(slots[IETF]!, slots[IETF + 1]!, slots[IETF + 2]!, slots[IETF + 3]!, slots[IETF + 4]!, (dimension, limit, remaining, resetMs, periodMs) => {
    const window = tighter(snapshot[dimension], boundWindow(limit, remaining, resetMs, periodMs, snapshot));
    if (window) snapshot[dimension] = window;
  });
  return snapshot;
}

const DIMENSIONS = ['requests', 'tokens'] as const;

/**
 * Every header name this module reads, to its slot: three per family
 * (limit, remaining, reset; families in {@link FAMILIES} order, requests
 * first), then the five IETF fields, then `retry-after-ms` and `retry-after`.
 */
const SLOT_OF = new Map<string, number>();
const FAMILY_SLOTS: Record<RateLimitDimension, number[]> = { requests: [], tokens: [] };
/** The period a family's names state, by its first slot. */
const FAMILY_PERIOD: (number | undefined)[] = [];
let slots = 0;
for (const dimension of DIMENSIONS) {
  for (const names of FAMILIES[dimension]) {
    FAMILY_SLOTS[dimension].push(slots);
    FAMILY_PERIOD[slots] = names.periodMs;
    SLOT_OF.set(names.limit, slots).set(names.remaining, slots + 1);
    if (names.reset !== '') SLOT_OF.set(names.reset, slots + 2);
    slots += 3;
  }
}
/** `RateLimit-Limit`, `-Remaining`, `-Reset`, `RateLimit`, `RateLimit-Policy`: read together (ratelimit-fields.ts). */
const IETF = slots;
for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit', 'ratelimit-policy']) SLOT_OF.set(name, slots++);
const RETRY_AFTER_MS = slots;
const RETRY_AFTER = RETRY_AFTER_MS + 1;
SLOT_OF.set('retry-after-ms', RETRY_AFTER_MS).set('retry-after', RETRY_AFTER);
const SLOT_COUNT = RETRY_AFTER + 1;

/**
 * The values of one answer's headers by slot (`null`: absent), the slots
 * written (`count` of them, in the answer's order), and whether any window,
 * IETF field or wait header was there.
 */
interface HeaderValues {
  slots: (string | null)[];
  written: number[];
  count: number;
  windows: boolean;
  ietf: boolean;
  explicit: boolean;
}

/**
 * The headers this module reads, in one pass over the answer's headers (a
 * `get` per name cost 30 lookups on every reply). Names come lower-cased
 * and each once, its values joined, exactly as `get` returns them.
 */
function readValues(entries: HeaderEntries, values: HeaderValues): void {
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const slot = SLOT_OF.get(entry[0]);
    if (slot === undefined) continue;
    if (values.slots === NO_VALUES) freeSlots(values);
    values.slots[slot] = entry[1];
    values.written[values.count++] = slot;
    if (slot >= RETRY_AFTER_MS) values.explicit = true;
    else {
      values.windows = true;
      if (slot >= IETF) values.ietf = true;
    }
  }
}

/** Slots, and the list of those written, reused from one answer to the next (read synchronously, emptied after each); taken while one is read. */
const SCRATCH = new Array<string | null>(SLOT_COUNT).fill(null);
const WRITTEN: number[] = [];
let scratchFree = true;

/** Empty slots for an answer: the reused ones, unless a read is under way. */
function freeSlots(values: HeaderValues): void {
  if (!scratchFree) {
    values.slots = new Array<string | null>(SLOT_COUNT).fill(null);
    values.written = [];
    return;
  }
  scratchFree = false;
  values.slots = SCRATCH;
}

/** The slots of an answer without any of the headers (shared, never written). */
const NO_VALUES: (string | null)[] = Object.freeze(new Array<string | null>(SLOT_COUNT).fill(null)) as (string | null)[];

/**
 * The dimensions a 429 says are exhausted: each with less than 1 remaining;
 * else the one with the smallest remaining share; else `requests`.
 */
export function exhaustedDimensions(snapshot: RateLimitSnapshot): RateLimitDimension[] {
  const empty = (['requests', 'tokens'] as const).filter((dimension) => {
    const remaining = snapshot[dimension]?.remaining;
    return remaining !== undefined && remaining < 1;
  });
  if (empty.length > 0) return empty;
  let tightest: RateLimitDimension | undefined;
  let least = Infinity;
  for (const dimension of ['requests', 'tokens'] as const) {
    const window = snapshot[dimension];
    if (window?.remaining === undefined || window.limit === undefined) continue;
    const share = window.remaining / window.limit;
    if (share < least) {
      least = share;
      tightest = dimension;
    }
  }
  return [tightest ?? 'requests'];
}

/** How long a rate-limited key rests, and why. */
export interface RateLimitRest {
  /** The rest in ms (0 … 1 hour). */
  ms: number;
  /** The dimensions the answer says are exhausted. */
  dimensions: RateLimitDimension[];
  /** Per exhausted dimension, its own rest (the explicit wait, else its reset, else the fallback). */
  perDimension: Partial<Record<RateLimitDimension, number>>;
  /** Set when an upstream value was capped. */
  capped?: true;
}

/**
 * How long a key rests after a 429, from an already parsed snapshot: the
 * explicit wait (`retry-after-ms` / `retry-after`) when present, else the
 * latest reset among the exhausted dimensions, else `bodyWaitMs` (the wait
 * the 429's body asks for: error-body.ts), else `fallbackMs`. The cooldown
 * and the limiter both use this, so they agree.
 */
export function restAfterRateLimit(snapshot: RateLimitSnapshot, fallbackMs: number, bodyWaitMs?: number): RateLimitRest {
  const fallback = Number.isFinite(fallbackMs) && fallbackMs > 0 ? Math.min(fallbackMs, RATE_LIMIT_CAPS.maxWaitMs) : 0;
  const dimensions = exhaustedDimensions(snapshot);
  const perDimension: Partial<Record<RateLimitDimension, number>> = {};
  let capped = snapshot.capped === true;
  for (const dimension of dimensions) {
    let ms = snapshot.retryAfterMs ?? snapshot[dimension]?.resetMs ?? bodyWaitMs ?? fallback;
    if (ms > RATE_LIMIT_CAPS.maxWaitMs) {
      capped = true;
      ms = RATE_LIMIT_CAPS.maxWaitMs;
    }
    perDimension[dimension] = ms;
  }
  const ms = Math.max(0, ...Object.values(perDimension));
  return capped ? { ms, dimensions, perDimension, capped: true } : { ms, dimensions, perDimension };
}

/**
 * The wait an answer asks for, in ms: `retry-after-ms`, then `retry-after`
 * (seconds or an HTTP date; a date in the past is 0), capped at 1 hour.
 * `undefined` when neither is usable (absent, negative, or garbage).
 */
export function retryAfterMs(headers: Headers, now: number): number | undefined {
  const wait = explicitWaitMs(headers.get('retry-after-ms'), headers.get('retry-after'), now);
  return wait === undefined ? undefined : Math.min(wait, RATE_LIMIT_CAPS.maxWaitMs);
}

/**
 * How long a rate-limited key should rest: the explicit retry hint, else the
 * reset of whichever window (requests, tokens) the answer says is exhausted,
 * in any provider's form (see {@link parseRateLimitHeaders}); capped at 1 hour.
 * `undefined` when the answer says neither. The same figure the limiter uses
 * ({@link restAfterRateLimit}).
 */
export function rateLimitResetMs(headers: Headers, now: number): number | undefined {
  const snapshot = parseRateLimitHeaders(headers, now);
  if (snapshot.retryAfterMs !== undefined) return snapshot.retryAfterMs;
  const rest = restAfterRateLimit(snapshot, 0);
  const known = rest.dimensions.some((dimension) => snapshot[dimension]?.resetMs !== undefined);
  return known ? rest.ms : undefined;
}
