/**
 * A continuous token bucket for one rate-limit dimension of one key, the way
 * OpenAI models its limits.
 */

import { MINUTE_MS } from './options';

export { MINUTE_MS };

/**
 * Below this many units (a millionth of a request or token) a level and a
 * need are treated as equal, so float noise never turns a fit into a wait.
 */
const EPSILON = 1e-6;

/** JSON-safe state of a {@link TokenBucket}; the capacity is not part of it (its owner derives that). */
export interface TokenBucketState {
  level: number | null;
  updatedAt: number | null;
  blockedUntil: number;
}

/**
 * A token bucket of `capacity` units per period (a minute unless
 * {@link TokenBucket.setCapacity} gives another) that refills continuously at
 * `capacity / period` units per ms and starts full. A capacity
 * of `Infinity` (nothing known) never limits, except through {@link block}.
 *
 * - The clock is passed to every call, in ms; a clock that goes backwards is
 *   taken as standing still.
 * - The level may go below zero, down to `-capacity`: a charge for more than was
 *   reserved (see {@link take}) is a debt that later reservations wait out.
 * - {@link block} closes the bucket until a moment, whatever its level; the level
 *   keeps refilling underneath, so when the block ends the bucket holds what a
 *   provider with the same continuous refill would.
 * - Waits are whole milliseconds, rounded up: retrying exactly `waitMs` later fits.
 */
export class TokenBucket {
  #capacity: number;
  #periodMs = MINUTE_MS;
  #level: number;
  #updatedAt: number | undefined;
  /** Undefined while never blocked (no boxed number per bucket that never was). */
  #blockedUntil: number | undefined;
  /** See the constructor. */
  readonly startLagMs: number;

  /**
   * @param capacity Units per minute, positive; `Infinity` for unknown (no limiting).
   * @param startLagMs When a take starts from a full bucket, refilling starts
   *   this much later. A provider counts a request when it arrives, after we
   *   took it; its bucket starts refilling that much later than ours, and a
   *   later request that arrives sooner would find a unit short. Default 0.
   */
  constructor(capacity = Infinity, startLagMs = 0) {
    if (!(capacity > 0)) throw new RangeError(`TokenBucket: capacity must be positive (got ${capacity})`);
    this.#capacity = capacity;
    this.#level = capacity;
    this.startLagMs = startLagMs;
  }

  /** Units per minute; `Infinity` when nothing is known. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Whether a finite capacity is in force. */
  get limited(): boolean {
    return Number.isFinite(this.#capacity);
  }

  /** Unlimited and never blocked: always full, whatever the clock (lets callers skip reading it). */
  get open(): boolean {
    return this.#blockedUntil === undefined && !Number.isFinite(this.#capacity);
  }

  /** The moment (clock ms) until which {@link block} keeps the bucket closed; `-Infinity` when never blocked. */
  get blockedUntil(): number {
    return this.#blockedUntil ?? -Infinity;
  }

  /** The period the capacity refills over, in ms (a minute unless {@link setCapacity} said otherwise). */
  get periodMs(): number {
    return this.#periodMs;
  }

  /** Units refilled per ms. */
  get #rate(): number {
    return this.#capacity / this.#periodMs;
  }

  #refill(now: number): void {
    if (this.#updatedAt === undefined || now > this.#updatedAt) {
      if (this.limited && this.#updatedAt !== undefined) {
        this.#level = Math.min(this.#capacity, this.#level + (now - this.#updatedAt) * this.#rate);
      }
      this.#updatedAt = now;
    }
  }

  /**
   * Changes the capacity (a limit learnt or re-estimated). Going from unknown
   * to known starts the bucket full; otherwise the level is kept, capped at the
   * new capacity (and its debt floor).
   */
  setCapacity(capacity: number, now: number, periodMs: number = this.#periodMs): void {
    if (!(capacity > 0)) throw new RangeError(`TokenBucket: capacity must be positive (got ${capacity})`);
    if (!(periodMs > 0) || !Number.isFinite(periodMs)) throw new RangeError(`TokenBucket: periodMs must be a positive finite number (got ${periodMs})`);
    if (capacity === this.#capacity && periodMs === this.#periodMs) return;
    this.#refill(now);
    this.#periodMs = periodMs;
    const wasLimited = this.limited;
    this.#capacity = capacity;
    if (!this.limited || !wasLimited) this.#level = capacity;
    else this.#level = Math.max(-capacity, Math.min(capacity, this.#level));
  }

  /** Units available at `now` (fractional, possibly negative); `Infinity` when unlimited. */
  level(now: number): number {
    this.#refill(now);
    return this.#level;
  }

  /** Share of capacity available at `now`, 0..1; 0 while blocked, 1 when unlimited. */
  share(now: number): number {
    if (this.#blockedUntil !== undefined && now < this.#blockedUntil) return 0;
    if (!this.limited) return 1;
    return Math.min(1, Math.max(0, this.level(now) / this.#capacity));
  }

  /**
   * Whole ms until `amount` units fit: 0 when they do now (always, for 0
   * units, even while blocked), `Infinity` when `amount` exceeds the capacity
   * (it never will).
   */
  waitMs(amount: number, now: number): number {
    if (amount <= 0) return 0;
    const blocked = this.#blockedUntil !== undefined && this.#blockedUntil > now ? Math.ceil(this.#blockedUntil - now) : 0;
    if (!this.limited) return blocked;
    if (amount > this.#capacity + EPSILON) return Infinity;
    const level = this.level(now);
    if (level + EPSILON >= amount) return blocked;
    const rate = this.#rate;
    // Refilling starts later after a start lag (see the constructor).
    const start = this.#updatedAt !== undefined && this.#updatedAt > now ? this.#updatedAt - now : 0;
    // Rounded up, minus a hair worth less than EPSILON units, so the ms it names is the first that fits.
    const refill = Math.ceil(start + (amount - level) / rate - EPSILON / (2 * rate));
    return Math.max(blocked, refill);
  }

  /** Takes `amount` units (negative gives back); the level stays within [-capacity, capacity]. */
  take(amount: number, now: number): void {
    if (!this.limited) return;
    this.#refill(now);
    const wasFull = this.#level >= this.#capacity;
    this.#level = Math.max(-this.#capacity, Math.min(this.#capacity, this.#level - amount));
    if (wasFull && amount > 0 && this.startLagMs > 0) this.#updatedAt = now + this.startLagMs;
  }

  /** Gives back `amount` units (a refund), never above capacity. */
  give(amount: number, now: number): void {
    this.take(-amount, now);
  }

  /** Lowers the level to `at most` (what the provider says is left); never raises it. */
  lower(atMost: number, now: number): void {
    if (!this.limited) return;
    this.#refill(now);
    this.#level = Math.max(-this.#capacity, Math.min(this.#level, atMost));
  }

  /**
   * Empties the bucket now and keeps it closed until `now + ms` (a longer block
   * already in force is kept). It refills as usual underneath.
   */
  block(ms: number, now: number): void {
    this.#refill(now);
    if (this.limited) this.#level = Math.min(this.#level, 0);
    this.#blockedUntil = Math.max(this.#blockedUntil ?? -Infinity, now + Math.max(0, ms));
  }

  /** JSON-safe state (level and clock; the capacity is its owner's to restore). */
  toJSON(): TokenBucketState {
    return {
      level: this.limited ? this.#level : null,
      updatedAt: this.#updatedAt ?? null,
      blockedUntil: this.#blockedUntil !== undefined && Number.isFinite(this.#blockedUntil) ? this.#blockedUntil : 0,
    };
  }

  /**
   * Restores {@link toJSON}'s state onto this bucket (whose capacity is already
   * set). Fields that are not finite numbers are ignored.
   */
  restore(state: Partial<TokenBucketState>): void {
    if (isFiniteNumber(state.updatedAt)) this.#updatedAt = state.updatedAt;
    if (this.limited && isFiniteNumber(state.level)) {
      this.#level = Math.max(-this.#capacity, Math.min(this.#capacity, state.level));
    }
    if (isFiniteNumber(state.blockedUntil)) this.#blockedUntil = state.blockedUntil;
  }
}

/** A finite number (not `NaN`, not ±`Infinity`). */
export function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
