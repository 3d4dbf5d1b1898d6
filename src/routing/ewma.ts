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
 *   (0.7^7 ≈ 0.08) — for steps within `clipRatio` (below); a larger step is
 *   followed more slowly, by design.
 * - `halfLifeMs` (default 60 s) ages the estimate by time: after a quiet
 *   period the old value counts less (after one half-life a new sample weighs
 *   half, after five ~97%), so a value measured long ago does not outweigh a
 *   fresh one.
 * - `clipRatio` (default 3) limits one sample's pull, as a winsorised
 *   estimate does: a sample above `clipRatio` × the average (an average under
 *   1 counts as 1 here) enters as that much, once the average holds two
 *   samples (one is no estimate to judge an outlier by: a first sample that
 *   was a fast failure must not hold the next replies down). One outlier — an
 *   event-loop stall in the application while the request was in flight, a
 *   long generation, a GC pause or a TCP retransmit upstream — then moves the
 *   average by at most `alpha × (clipRatio − 1)` = +60% back to back (30 →
 *   48 ms for a 2 s sample, where taken whole it made 627 ms and sent the
 *   traffic elsewhere for a minute), while a lasting slow-down still
 *   multiplies it by 1.6 per sample: it reaches 2× its old level after 2
 *   samples, 3× after 3 (30 → 123 ms after three 2 s samples: behind an 89 ms
 *   deployment), 10× after 5, 100× after 10 (after a quiet period, whose
 *   samples weigh more, up to 3× per sample). Falling samples are not limited,
 *   so a recovery is followed as fast as before. Costs a multiplication and a
 *   comparison per sample; no state but a sample count up to 2.
 *
 * Why not pure per-sample (fixed alpha): a rarely used deployment would keep
 * a stale value for hours. Why not pure time decay: under heavy traffic
 * (Δt ≈ 0) each sample would weigh almost nothing and a slow-down would be
 * followed only after many samples. Why a clip rather than a median of the
 * last few samples: the state stays one number (snapshots as before) and a
 * sample costs the same, while one outlier still barely counts. The first
 * sample is taken as is. Non-finite samples are ignored; a clock going backwards counts as Δt = 0.
 */
import { describe } from '../config/check';

/** Tuning of an {@link Ewma}. */
export interface EwmaOptions {
  /** Time in ms after which an old estimate weighs half against a new sample. Default 60 000; `Infinity` turns time decay off. */
  halfLifeMs?: number;
  /** Least weight of each new sample, 0..1. Default 0.3; 0 leaves pure time decay, 1 keeps only the last sample. */
  alpha?: number;
  /** Largest multiple of the average a sample enters as (a larger one counts as this), at least 1. Default 3; `Infinity` turns the limit off. */
  clipRatio?: number;
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
/** Default largest multiple of the average a sample of an {@link Ewma} enters as. */
export const DEFAULT_EWMA_CLIP_RATIO = 3;

/** Samples an average holds before later ones are clipped: one sample is no estimate to judge an outlier by. */
const CLIP_AFTER = 2;

/** A time-decayed EWMA with a per-sample floor; see the module comment for the choice. The clock is the caller's (`now` in ms). */
export class Ewma {
  /** Half-life of the time decay, ms. */
  readonly halfLifeMs: number;
  /** Least weight of each new sample. */
  readonly alpha: number;
  /** Largest multiple of the average a sample enters as. */
  readonly clipRatio: number;
  #value: number | undefined;
  #at = 0;
  /** Samples taken in, counted up to {@link CLIP_AFTER}. */
  #samples = 0;

  /**
   * @param options the half-life in ms, or {@link EwmaOptions}.
   * @throws {RangeError} for a half-life that is not a positive number, an alpha outside 0..1, or a clipRatio under 1.
   */
  constructor(options: number | EwmaOptions = {}) {
    const { halfLifeMs = DEFAULT_EWMA_HALF_LIFE_MS, alpha = DEFAULT_EWMA_ALPHA, clipRatio = DEFAULT_EWMA_CLIP_RATIO } =
      typeof options === 'number' ? { halfLifeMs: options } : options;
    if (!(halfLifeMs > 0)) throw new RangeError(`keyplex: Ewma halfLifeMs must be a positive number of ms; got ${describe(halfLifeMs)}`);
    if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`keyplex: Ewma alpha must be between 0 and 1; got ${describe(alpha)}`);
    if (!(clipRatio >= 1)) throw new RangeError(`keyplex: Ewma clipRatio must be a number >= 1; got ${describe(clipRatio)}`);
    this.halfLifeMs = halfLifeMs;
    this.alpha = alpha;
    this.clipRatio = clipRatio;
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
   * average. A non-finite sample is ignored; one above `clipRatio` × the
   * average enters as that, unless `unclipped` (a sample that is no outlier
   * but a verdict, as a failed attempt's time is: see `Deployment.failedAfter`).
   */
  update(value: number, now: number, unclipped = false): number | undefined {
    if (!Number.isFinite(value)) return this.#value;
    const previous = this.#value;
    if (previous === undefined) {
      this.#value = value;
    } else {
      const elapsed = now > this.#at ? now - this.#at : 0;
      const decay = 1 - 2 ** (-elapsed / this.halfLifeMs);
      const weight = decay > this.alpha ? decay : this.alpha;
      const ceiling = (previous > 1 ? previous : 1) * this.clipRatio;
      const sample = value > ceiling && !unclipped && this.#samples >= CLIP_AFTER ? ceiling : value;
      this.#value = previous + weight * (sample - previous);
    }
    if (this.#samples < CLIP_AFTER) this.#samples++;
    if (Number.isFinite(now)) this.#at = now;
    return this.#value;
  }

  /** Forgets every sample. */
  reset(): void {
    this.#value = undefined;
    this.#at = 0;
    this.#samples = 0;
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
      this.#samples = CLIP_AFTER;
    } else {
      this.reset();
    }
    return this;
  }
}
