/**
 * A time-decayed exponentially weighted moving average, for deployment
 * latency and time to first token.
 *
 * Each new sample gets weight `w = max(alpha, 1 - 2^(-Δt / halfLifeMs))`,
 * where `Δt` is the time since the previous sample:
 *
 * - `alpha` (default 0.3) is a floor per sample, so the average follows a
 *   change within a few samples however fast they arrive. After a step change
 *   with back-to-back samples the estimate passes the midpoint between old
 *   and new level after 2 samples and is within 10% of the new level after 7
 *   (0.7^7 ≈ 0.08). A deployment that turns slow is thus ranked behind a
 *   faster one after one or two slow answers.
 * - `halfLifeMs` (default 60 s) ages the estimate by time: after a quiet
 *   period the old value counts less (after one half-life a new sample weighs
 *   half, after five ~97%), so a value measured long ago does not outweigh a
 *   fresh one.
 *
 * Why not pure per-sample (fixed alpha): a rarely used deployment would keep
 * a stale value for hours. Why not pure time decay: under heavy traffic
 * (Δt ≈ 0) each sample would weigh almost nothing and a slow-down would be
 * followed only after many samples. The first sample is taken as is.
 * Non-finite samples are ignored; a clock going backwards counts as Δt = 0.
 */
import { describe } from '../config/check';

/** Tuning of an {@link Ewma}. */
export interface EwmaOptions {
  /** Time in ms after which an old estimate weighs half against a new sample. Default 60 000; `Infinity` turns time decay off. */
  halfLifeMs?: number;
  /** Least weight of each new sample, 0..1. Default 0.3; 0 leaves pure time decay, 1 keeps only the last sample. */
  alpha?: number;
}

/** The JSON form of an {@link Ewma} that has a value: its value and when it was last updated. */
export interface EwmaSnapshot {
  value: number;
  /** Clock reading (ms) of the last sample. */
  at: number;
}

/** Default half-life of an {@link Ewma}, in ms. */
export const DEFAULT_EWMA_HALF_LIFE_MS = 60_000;
/** Default least weight of each new sample in an {@link Ewma}. */
export const DEFAULT_EWMA_ALPHA = 0.3;

/** A time-decayed EWMA with a per-sample floor; see the module comment for the choice. The clock is the caller's (`now` in ms). */
export class Ewma {
  /** Half-life of the time decay, ms. */
  readonly halfLifeMs: number;
  /** Least weight of each new sample. */
  readonly alpha: number;
  #value: number | undefined;
  #at = 0;

  /**
   * @param options the half-life in ms, or {@link EwmaOptions}.
   * @throws {RangeError} for a half-life that is not a positive number, or an alpha outside 0..1.
   */
  constructor(options: number | EwmaOptions = {}) {
    const { halfLifeMs = DEFAULT_EWMA_HALF_LIFE_MS, alpha = DEFAULT_EWMA_ALPHA } = typeof options === 'number' ? { halfLifeMs: options } : options;
    if (!(halfLifeMs > 0)) throw new RangeError(`keyplex: Ewma halfLifeMs must be a positive number of ms; got ${describe(halfLifeMs)}`);
    if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`keyplex: Ewma alpha must be between 0 and 1; got ${describe(alpha)}`);
    this.halfLifeMs = halfLifeMs;
    this.alpha = alpha;
  }

  /** The current average, `undefined` until the first sample. */
  get value(): number | undefined {
    return this.#value;
  }

  /** Clock reading of the last sample, `undefined` until the first. */
  get updatedAt(): number | undefined {
    return this.#value === undefined ? undefined : this.#at;
  }

  /**
   * Adds a sample taken at `now` (ms, the caller's clock) and returns the new
   * average. A non-finite sample is ignored.
   */
  update(value: number, now: number): number | undefined {
    if (!Number.isFinite(value)) return this.#value;
    const previous = this.#value;
    if (previous === undefined) {
      this.#value = value;
    } else {
      const elapsed = now > this.#at ? now - this.#at : 0;
      const decay = 1 - 2 ** (-elapsed / this.halfLifeMs);
      const weight = decay > this.alpha ? decay : this.alpha;
      this.#value = previous + weight * (value - previous);
    }
    if (Number.isFinite(now)) this.#at = now;
    return this.#value;
  }

  /** Forgets every sample. */
  reset(): void {
    this.#value = undefined;
    this.#at = 0;
  }

  /** `{ value, at }`, or `null` before the first sample (so it survives a `JSON.stringify` round trip). */
  toJSON(): EwmaSnapshot | null {
    return this.#value === undefined ? null : { value: this.#value, at: this.#at };
  }

  /**
   * Takes the state of a {@link toJSON} snapshot (e.g. from a shared store).
   * `null`, `undefined` or a malformed snapshot (non-finite numbers) leave the
   * average unmeasured rather than throwing: restoring runs on the request
   * path, and a lost estimate is only re-measured.
   */
  restore(snapshot: EwmaSnapshot | null | undefined): this {
    if (snapshot != null && typeof snapshot === 'object' && Number.isFinite(snapshot.value) && Number.isFinite(snapshot.at)) {
      this.#value = snapshot.value;
      this.#at = snapshot.at;
    } else {
      this.reset();
    }
    return this;
  }
}
