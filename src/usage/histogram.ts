/**
 * Latency percentiles from an HdrHistogram (hdr-histogram-js): bounded memory
 * (about 9 KiB each, 3.9 KiB packed), 2 significant digits (±1%), 1 ms to 1
 * hour, made at the first sample.
 */
import { build, type Histogram } from 'hdr-histogram-js';

const HIGHEST_MS = 3_600_000;

/** Percentiles of one histogram, in ms; `undefined` with no samples. */
export interface Percentiles {
  count: number;
  p50: number | undefined;
  p95: number | undefined;
  p99: number | undefined;
}

const NO_SAMPLES: Readonly<Percentiles> = Object.freeze({ count: 0, p50: undefined, p95: undefined, p99: undefined });

export class LatencyHistogram {
  #histogram: Histogram | undefined;
  readonly #compact: boolean;
  /** The last percentiles read, until the next sample or reset (stats() of idle scopes costs nothing). */
  #read: Percentiles | undefined;

  /**
   * @param compact packed buckets (about 3.9 KiB instead of 9 KiB, a little
   *   slower to record): for scopes there may be thousands of, such as keys.
   *   Either way the histogram is made at the first sample.
   */
  constructor(compact = false) {
    this.#compact = compact;
  }

  /** Records one duration in ms (clamped to 1 ms – 1 h). */
  record(ms: number): void {
    this.#made().recordValue(Math.min(HIGHEST_MS, Math.max(1, Math.round(ms))));
    this.#read = undefined;
  }

  #made(): Histogram {
    this.#histogram ??= build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_MS,
      numberOfSignificantValueDigits: 2,
      bitBucketSize: this.#compact ? 'packed' : 32,
    });
    return this.#histogram;
  }

  /** A new object each call (callers may keep or change it). */
  percentiles(): Percentiles {
    if (this.#read === undefined) {
      const h = this.#histogram;
      this.#read =
        !h || h.totalCount === 0
          ? NO_SAMPLES
          : { count: h.totalCount, p50: h.getValueAtPercentile(50), p95: h.getValueAtPercentile(95), p99: h.getValueAtPercentile(99) };
    }
    return { ...this.#read };
  }

  reset(): void {
    this.#histogram?.reset();
    this.#read = undefined;
  }

  /** Adds `other`'s samples to this one's. */
  absorb(other: LatencyHistogram): void {
    const theirs = other.#histogram;
    if (theirs === undefined || theirs.totalCount === 0) return;
    this.#made().add(theirs);
    this.#read = undefined;
  }
}
