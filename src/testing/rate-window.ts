/**
 * The simulator's per-key rate limits: a token bucket over a 60 s window, and
 * OpenAI's duration format for the `x-ratelimit-reset-*` headers.
 */

/** Below this, a bucket level or a wait is treated as float noise. */
const EPSILON = 1e-9;

/** Rounds a duration in ms up, ignoring float noise just above an integer. */
export function ceilMs(ms: number): number {
  return Math.max(0, Math.ceil(ms - 1e-6));
}

/**
 * A duration in OpenAI's `x-ratelimit-reset-*` format (Go's
 * `time.Duration` string): `0s`, `20ms`, `1s`, `1.5s`, `1m30.5s`, `6m0s`,
 * `1h0m0s`. Fractional milliseconds are rounded up.
 *
 * @param ms A finite, non-negative number of milliseconds.
 * @throws RangeError when `ms` is negative, `NaN` or infinite.
 */
export function formatDuration(ms: number): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`formatDuration: ms must be a finite, non-negative number (got ${String(ms)})`);
  }
  const total = Math.ceil(ms);
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1000);
  const fraction = millis % 1000;
  const seconds = fraction === 0 ? `${whole}` : `${whole}.${String(fraction).padStart(3, '0').replace(/0+$/, '')}`;
  let out = '';
  if (hours > 0) out += `${hours}h`;
  if (hours > 0 || minutes > 0) out += `${minutes}m`;
  return `${out}${seconds}s`;
}

/**
 * A token bucket of `capacity` units that refills continuously at
 * `capacity` per `windowMs` (60 s by default), starting full. A capacity of
 * `Infinity` never limits.
 *
 * The clock is passed to each call; a clock that goes backwards is treated
 * as standing still.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly windowMs: number;
  #level: number;
  #updatedAt: number | undefined;

  constructor(capacity: number, windowMs = 60_000) {
    if (!(capacity > 0)) throw new RangeError(`TokenBucket: capacity must be positive (got ${capacity})`);
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new RangeError(`TokenBucket: windowMs must be a positive finite number (got ${windowMs})`);
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.#level = capacity;
  }

  /** Whether this bucket limits anything. */
  get limited(): boolean {
    return Number.isFinite(this.capacity);
  }

  #refill(now: number): void {
    if (!this.limited) return;
    if (this.#updatedAt !== undefined && now > this.#updatedAt) {
      this.#level = Math.min(this.capacity, this.#level + ((now - this.#updatedAt) * this.capacity) / this.windowMs);
    }
    if (this.#updatedAt === undefined || now > this.#updatedAt) this.#updatedAt = now;
  }

  /** Units available at `now` (fractional). */
  available(now: number): number {
    this.#refill(now);
    return this.#level;
  }

  /**
   * Milliseconds until `amount` units are available: 0 when they are now,
   * `Infinity` when `amount` exceeds the capacity.
   */
  waitMs(amount: number, now: number): number {
    if (!this.limited) return 0;
    if (amount > this.capacity) return Infinity;
    const level = this.available(now);
    if (level + EPSILON >= amount) return 0;
    return ((amount - level) * this.windowMs) / this.capacity;
  }

  /** Takes `amount` units (the caller checked {@link waitMs} first); the level may not go below 0. */
  take(amount: number, now: number): void {
    if (!this.limited) return;
    this.#refill(now);
    this.#level = Math.max(0, this.#level - amount);
  }

  /** Whole units left at `now`, as `x-ratelimit-remaining-*` reports them. */
  remaining(now: number): number {
    return Math.max(0, Math.floor(this.available(now) + EPSILON));
  }

  /** Milliseconds until the bucket is full again, as `x-ratelimit-reset-*` reports them. */
  resetMs(now: number): number {
    if (!this.limited) return 0;
    const missing = this.capacity - this.available(now);
    return missing <= EPSILON ? 0 : (missing * this.windowMs) / this.capacity;
  }

  /** Full again, clock forgotten. */
  clear(): void {
    this.#level = this.capacity;
    this.#updatedAt = undefined;
  }
}
