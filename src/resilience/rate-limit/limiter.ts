/**
 * Per-key rate limiting and pacing: a token bucket per dimension (requests and
 * tokens per minute) whose capacities come from configuration, from the
 * provider's headers, or from AIMD on 429s. Pure and deterministic: the clock
 * is injected, nothing sleeps, nothing is scheduled.
 */
import { ConfigError } from '../../errors';
import { retryAfterMs } from '../headers';
import { AimdEstimator, type AimdState } from './aimd';
import { isFiniteNumber, TokenBucket, type TokenBucketState } from './bucket';
import { parseRateLimitHeaders, type RateLimitDimension, type RateLimitSnapshot } from './parse';

/** Options of one key's {@link KeyLimiter}. */
export interface KeyLimiterOptions {
  /** Requests per minute this key may send; `undefined` = unknown (learnt from headers, or adaptive). */
  rpm?: number | undefined;
  /** Tokens (input + output) per minute; `undefined` = unknown (learnt from headers). */
  tpm?: number | undefined;
  /** AIMD on 429s while no requests limit is known. Default `true`. */
  adaptive?: boolean | undefined;
}

/**
 * What {@link KeyLimiter.tryReserve} took: 1 request and `tokens` estimated
 * tokens at clock time `at`. Hand it back to {@link KeyLimiter.reconcile} or
 * {@link KeyLimiter.refund} exactly once; later calls with it are ignored.
 */
export interface Reservation {
  readonly tokens: number;
  readonly at: number;
}

/** The answer of {@link KeyLimiter.tryReserve}. */
export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; waitMs: number };

/** Where the limits in force came from, strongest first. */
export type RateLimitSource = 'config' | 'headers' | 'adaptive' | 'none';

/** The limits a {@link KeyLimiter} enforces, for stats. */
export interface KeyLimits {
  /** Requests per minute in force; `undefined` when none (no limiting). */
  rpm: number | undefined;
  /** Tokens per minute in force; `undefined` when none. */
  tpm: number | undefined;
  /**
   * The strongest source among the two limits: `'config'` if either is
   * configured, else `'headers'` if either was learnt from headers, else
   * `'adaptive'` while an AIMD estimate is in force, else `'none'`.
   */
  source: RateLimitSource;
}

/** JSON-safe state of a {@link KeyLimiter} (version 1), for a shared store. */
export interface KeyLimiterState {
  v: 1;
  /** Limits learnt from headers (the configured ones are the owner's, not state). */
  learnt: { rpm: number | null; tpm: number | null };
  requests: TokenBucketState;
  tokens: TokenBucketState;
  aimd: AimdState;
}

const DIMENSIONS: readonly RateLimitDimension[] = ['requests', 'tokens'];
const RANK: Record<RateLimitSource, number> = { none: 0, adaptive: 1, headers: 2, config: 3 };

/** A positive finite number, or `undefined` when it is not one. */
function positive(value: unknown): number | undefined {
  return isFiniteNumber(value) && value > 0 ? value : undefined;
}

/**
 * One key's rate limiter, modelled on OpenAI's: per dimension (requests,
 * tokens) a token bucket of capacity = limit per minute, refilling
 * continuously at limit / 60 000 per ms, starting full (see {@link TokenBucket}).
 *
 * **Where limits come from.** Per dimension, configured limits always win over
 * limits learnt from headers (`x-ratelimit-limit-*`, `anthropic-ratelimit-*-limit`),
 * which win over the AIMD estimate. A header that says less is left than the
 * bucket holds still lowers the level, whatever the capacity's source, so a
 * key shared with other clients is paced by what the provider says.
 *
 * **Adaptive (AIMD)**, on by default, applies to requests per minute only and
 * only while neither configuration nor headers gave one (see
 * {@link AimdEstimator}): unknown at first (no limiting); on the first 429,
 * `max(1, requests sent in the last 60 s × 0.5)`; +1 rpm per success, at most
 * doubling per minute; halved by a later 429. A limit learnt from headers
 * replaces the estimate for good.
 *
 * **Burst.** Like the provider's own bucket, a full bucket admits up to its
 * capacity at once: in any 60 s window at most `2 × limit` requests are
 * admitted (the initial burst of `limit` plus a minute of refill), and once the
 * burst is spent, `limit` (+1 at the window's edges).
 *
 * **Cost.** Every method is O(1) and never waits: the caller sleeps
 * `waitMs` itself (the pipeline waits for the earliest key within its deadline).
 */
export class KeyLimiter {
  readonly #clock: () => number;
  #last = -Infinity;
  readonly #config: { requests: number | undefined; tokens: number | undefined };
  readonly #adaptive: boolean;
  readonly #learnt: { requests: number | undefined; tokens: number | undefined } = { requests: undefined, tokens: undefined };
  readonly #buckets = { requests: new TokenBucket(), tokens: new TokenBucket() };
  readonly #aimd = new AimdEstimator();
  readonly #settled = new WeakSet<Reservation>();

  /**
   * @param options Configured limits; see {@link KeyLimiterOptions}.
   * @param now The clock in ms (default `Date.now`). A clock that goes backwards is taken as standing still.
   * @throws ConfigError naming `rpm`, `tpm` or `adaptive` when one is not a positive finite number / a boolean.
   */
  constructor(options: KeyLimiterOptions = {}, now: () => number = Date.now) {
    for (const field of ['rpm', 'tpm'] as const) {
      const value = options[field];
      if (value !== undefined && positive(value) === undefined) {
        throw new ConfigError(field, `expected a positive finite number of ${field === 'rpm' ? 'requests' : 'tokens'} per minute; got ${String(value)}`);
      }
    }
    if (options.adaptive !== undefined && typeof options.adaptive !== 'boolean') {
      throw new ConfigError('adaptive', `expected true or false; got ${typeof options.adaptive}`);
    }
    this.#config = { requests: options.rpm, tokens: options.tpm };
    this.#adaptive = options.adaptive ?? true;
    this.#clock = now;
    this.#sync(this.#now());
  }

  /** The clock, never going backwards. */
  #now(): number {
    const t = this.#clock();
    if (Number.isFinite(t) && t > this.#last) this.#last = t;
    return Number.isFinite(this.#last) ? this.#last : 0;
  }

  #limit(dimension: RateLimitDimension): { value: number | undefined; source: RateLimitSource } {
    const configured = this.#config[dimension];
    if (configured !== undefined) return { value: configured, source: 'config' };
    const learnt = this.#learnt[dimension];
    if (learnt !== undefined) return { value: learnt, source: 'headers' };
    const estimate = dimension === 'requests' && this.#adaptive ? this.#aimd.estimate : undefined;
    if (estimate !== undefined) return { value: estimate, source: 'adaptive' };
    return { value: undefined, source: 'none' };
  }

  /** Brings the buckets' capacities in line with the limits in force. */
  #sync(now: number): void {
    for (const dimension of DIMENSIONS) {
      this.#buckets[dimension].setCapacity(this.#limit(dimension).value ?? Infinity, now);
    }
  }

  /** The limits in force (configured, learnt or estimated), for stats. */
  get limits(): KeyLimits {
    const requests = this.#limit('requests');
    const tokens = this.#limit('tokens');
    const source = RANK[requests.source] >= RANK[tokens.source] ? requests.source : tokens.source;
    return { rpm: requests.value, tpm: tokens.value, source };
  }

  /**
   * Reserves 1 request and `tokens` estimated tokens if both fit now.
   * Otherwise says how long until they would, in whole ms (rounded up, so
   * trying again exactly that much later fits unless something else took the
   * room), or `Infinity` when they never can (`tokens` above the tokens limit).
   * Never waits. A `tokens` that is negative or not a number counts as 0.
   */
  tryReserve(tokens: number): ReserveResult {
    const now = this.#now();
    const amount = tokens >= 0 ? tokens : 0;
    const waitMs = Math.max(this.#buckets.requests.waitMs(1, now), this.#buckets.tokens.waitMs(amount, now));
    if (waitMs > 0) return { ok: false, waitMs };
    this.#buckets.requests.take(1, now);
    this.#buckets.tokens.take(amount, now);
    this.#aimd.recordSend(now);
    return { ok: true, reservation: Object.freeze({ tokens: amount, at: now }) };
  }

  /**
   * Share of capacity left now, 0..1: the minimum over dimensions with a
   * known limit of level / capacity (a blocked dimension is 0); 1 when nothing
   * is known. O(1).
   */
  headroom(): number {
    // A key with no limit known (and never rate-limited) has all its room: no clock needed.
    if (this.#buckets.requests.open && this.#buckets.tokens.open) return 1;
    const now = this.#now();
    return Math.min(this.#buckets.requests.share(now), this.#buckets.tokens.share(now));
  }

  /**
   * After a reply: replaces the reservation's estimate with the real token
   * count — gives back the difference when fewer were used (never above
   * capacity), charges it when more (the level may go into debt, down to
   * −capacity). Once per reservation; an `actualTokens` that is not a
   * non-negative number leaves the estimate standing.
   * @returns Whether the count was applied (false: settled already, or not a count).
   */
  reconcile(reservation: Reservation, actualTokens: number): boolean {
    if (this.#settled.has(reservation)) return false;
    this.#settled.add(reservation);
    if (!isFiniteNumber(actualTokens) || actualTokens < 0) return false;
    this.#buckets.tokens.take(actualTokens - reservation.tokens, this.#now());
    return true;
  }

  /**
   * The attempt failed before the provider could have counted it (connection
   * refused): gives the reservation's tokens back and keeps the request (it
   * still counts as sent, for pacing and AIMD). Once per reservation.
   * @returns Whether it was given back (false: settled already).
   */
  refund(reservation: Reservation): boolean {
    if (this.#settled.has(reservation)) return false;
    this.#settled.add(reservation);
    this.#buckets.tokens.give(reservation.tokens, this.#now());
    return true;
  }

  /**
   * The reservation was never used (a shared store refused it): gives back its
   * request and its tokens. Once per reservation.
   */
  cancel(reservation: Reservation): void {
    if (this.#settled.has(reservation)) return;
    this.#settled.add(reservation);
    const now = this.#now();
    this.#buckets.requests.give(1, now);
    this.#buckets.tokens.give(reservation.tokens, now);
  }

  /**
   * Mirrors a shared store's levels (units left, shared by every manager of
   * the key): each given level lowers this limiter's, never raises it, so
   * picks here see what other managers took. `undefined` leaves a dimension as it is.
   */
  mirror(requests: number | undefined, tokens: number | undefined): void {
    if (requests === undefined && tokens === undefined) return;
    const now = this.#now();
    if (requests !== undefined) this.#buckets.requests.lower(requests, now);
    if (tokens !== undefined) this.#buckets.tokens.lower(tokens, now);
  }

  /**
   * Learns from any answer's headers (see {@link parseRateLimitHeaders}):
   * a limit becomes the dimension's capacity (unless one is configured; a
   * learnt requests limit ends AIMD), and a remaining lowers the level to
   * `min(local level, remaining)` — never raises it, so in-flight
   * reservations the provider has not counted yet stay counted.
   */
  learn(headers: Headers): void {
    const now = this.#now();
    this.#learn(parseRateLimitHeaders(headers, now), now);
  }

  #learn(snapshot: RateLimitSnapshot, now: number): void {
    for (const dimension of DIMENSIONS) {
      const limit = snapshot[dimension]?.limit;
      if (limit === undefined) continue;
      this.#learnt[dimension] = limit;
      if (dimension === 'requests') this.#aimd.clear();
    }
    this.#sync(now);
    for (const dimension of DIMENSIONS) {
      const remaining = snapshot[dimension]?.remaining;
      if (remaining !== undefined) this.#buckets[dimension].lower(remaining, now);
    }
  }

  /**
   * A 429 for this key. Learns from its headers first, then empties the
   * exhausted dimension and keeps it closed until its reset:
   *
   * - exhausted = each dimension whose remaining is below 1; else the one with
   *   the smallest remaining share (remaining / limit); else, when the headers
   *   do not say, requests (which closes the key for every request);
   * - its rest = `retry-after-ms` / `retry-after` when present, else that
   *   dimension's reset header, else `fallbackMs` (non-finite or negative
   *   counts as 0);
   * - with AIMD in force (no configured or learnt rpm), the estimate is
   *   multiplicatively decreased (see {@link AimdEstimator}).
   *
   * The bucket keeps refilling while closed, so at the reset it holds what a
   * provider refilling the same way would.
   */
  rateLimited(headers: Headers, fallbackMs: number): void {
    const now = this.#now();
    const snapshot = parseRateLimitHeaders(headers, now);
    this.#learn(snapshot, now);
    const explicit = retryAfterMs(headers, now);
    const fallback = isFiniteNumber(fallbackMs) && fallbackMs > 0 ? fallbackMs : 0;
    const rests = exhaustedDimensions(snapshot).map((dimension) => ({
      dimension,
      ms: explicit ?? snapshot[dimension]?.resetMs ?? fallback,
    }));
    if (this.#adaptive && RANK[this.#limit('requests').source] <= RANK.adaptive) {
      const restUntil = now + Math.max(0, ...rests.map((rest) => rest.ms));
      if (this.#aimd.onRateLimited(now, restUntil)) this.#sync(now);
    }
    for (const { dimension, ms } of rests) this.#buckets[dimension].block(ms, now);
  }

  /** A success: with AIMD in force, the additive increase (+1 rpm, at most doubling per minute). */
  succeeded(): void {
    if (this.#limit('requests').source !== 'adaptive') return;
    const now = this.#now();
    if (this.#aimd.onSuccess(now)) this.#sync(now);
  }

  /**
   * JSON-safe snapshot of the state (levels, blocks, learnt limits, AIMD) —
   * not the configured limits, which belong to whoever builds the limiter.
   * Times are the injected clock's, so processes sharing it should share a clock
   * (epoch ms).
   */
  toJSON(): KeyLimiterState {
    return {
      v: 1,
      learnt: { rpm: this.#learnt.requests ?? null, tpm: this.#learnt.tokens ?? null },
      requests: this.#buckets.requests.toJSON(),
      tokens: this.#buckets.tokens.toJSON(),
      aimd: this.#aimd.toJSON(),
    };
  }

  /**
   * Restores a {@link toJSON} snapshot. Tolerant, since a shared store may hold
   * anything: state of another shape or version is ignored whole (returns
   * `false`), and fields that do not fit are ignored one by one. Configured
   * limits stay in force; levels are clamped to the capacities.
   * @returns Whether the state was recognised and applied.
   */
  restore(state: unknown): boolean {
    if (!isRecord(state) || state.v !== 1) return false;
    const now = this.#now();
    if (isRecord(state.learnt)) {
      if ('rpm' in state.learnt) this.#learnt.requests = positive(state.learnt.rpm);
      if ('tpm' in state.learnt) this.#learnt.tokens = positive(state.learnt.tpm);
    }
    if (isRecord(state.aimd)) this.#aimd.restore(state.aimd as Partial<AimdState>);
    if (this.#learnt.requests !== undefined) this.#aimd.clear();
    this.#sync(now);
    for (const dimension of DIMENSIONS) {
      const bucket = state[dimension];
      if (isRecord(bucket)) this.#buckets[dimension].restore(bucket as Partial<TokenBucketState>);
    }
    return true;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The dimensions a 429 says are exhausted: each with less than 1 remaining;
 * else the one with the smallest remaining share; else `requests`.
 */
export function exhaustedDimensions(snapshot: RateLimitSnapshot): RateLimitDimension[] {
  const empty = DIMENSIONS.filter((dimension) => {
    const remaining = snapshot[dimension]?.remaining;
    return remaining !== undefined && remaining < 1;
  });
  if (empty.length > 0) return empty;
  let tightest: RateLimitDimension | undefined;
  let least = Infinity;
  for (const dimension of DIMENSIONS) {
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
