/**
 * Latency percentiles from a log-linear histogram: whole ms from 1 ms to 1
 * hour, exact below 128 ms and in 64 buckets per doubling above (a value is
 * reported as its bucket's middle: within 0.8%, 2 significant digits). Its
 * counts are made at the first sample: dense (1,088 counts, 4.3 KiB) for the
 * few scopes of a manager, or sparse (16 bytes per bucket in use, grown on
 * demand, dense once that is smaller) for scopes there may be thousands of,
 * such as keys.
 */

const HIGHEST_MS = 3_600_000;
/** Exact below this; then `SUB` buckets per doubling. */
const LINEAR = 128;
const SUB = 64;
const SUB_BITS = 6;
/** Buckets up to {@link HIGHEST_MS} (2^21 < 3.6e6 < 2^22). */
const BUCKETS = LINEAR + (22 - 7) * SUB;
/** Pairs a sparse histogram holds before it turns dense (a pair is two array slots of 8 bytes: then dense is no larger). */
const SPARSE_MAX = BUCKETS / 4;

/** Percentiles of one histogram, in ms; `undefined` with no samples. */
export interface Percentiles {
  count: number;
  p50: number | undefined;
  p95: number | undefined;
  p99: number | undefined;
}

const NO_SAMPLES: Readonly<Percentiles> = Object.freeze({ count: 0, p50: undefined, p95: undefined, p99: undefined });

/** The bucket of a whole number of ms in 1..HIGHEST_MS. */
function bucketOf(ms: number): number {
  if (ms < LINEAR) return ms;
  const shift = 31 - Math.clz32(ms) - SUB_BITS; // >= 1
  return LINEAR + (shift - 1) * SUB + ((ms >>> shift) - SUB);
}

/** The value a bucket stands for: its middle (exact below {@link LINEAR}). */
function valueOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const shift = ((bucket - LINEAR) >>> SUB_BITS) + 1;
  const low = (SUB + ((bucket - LINEAR) & (SUB - 1))) << shift;
  return low + (1 << (shift - 1)) - 0.5;
}

export class LatencyHistogram {
  /**
   * The counts, made at the first sample: dense, a count per bucket; or
   * sparse, `[bucket, count, ...]` pairs by bucket (a plain array of small
   * integers: no typed array's fixed cost). One field for both: 4 fields per
   * histogram, as there may be thousands.
   */
  #data: Uint32Array | number[] | undefined;
  readonly #compact: boolean;
  #total = 0;
  /** The last percentiles read, until the next sample or reset (stats() of idle scopes costs nothing). */
  #read: Percentiles | undefined;

  /**
   * @param compact sparse counts, grown on demand (16 bytes per bucket in
   *   use): for scopes there may be thousands of, such as keys. Either way
   *   the counts are made at the first sample.
   */
  constructor(compact = false) {
    this.#compact = compact;
  }

  /** Records one duration in ms (rounded, clamped to 1 ms – 1 h). */
  record(ms: number): void {
    this.#add(bucketOf(Math.min(HIGHEST_MS, Math.max(1, Math.round(ms)))), 1);
  }

  #add(bucket: number, n: number): void {
    this.#total += n;
    this.#read = undefined;
    const data = this.#data;
    if (data === undefined) {
      if (this.#compact) this.#data = [bucket, n];
      else (this.#data = new Uint32Array(BUCKETS))[bucket] = n;
      return;
    }
    if (!Array.isArray(data)) {
      data[bucket]! += n;
      return;
    }
    const pairs = data;
    let lo = 0;
    let hi = pairs.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pairs[mid * 2]! < bucket) lo = mid + 1;
      else hi = mid;
    }
    if (pairs[lo * 2] === bucket) pairs[lo * 2 + 1] = pairs[lo * 2 + 1]! + n;
    // A short list is copied at its exact length (a splice leaves room for 16 more numbers, per key); a long one grows.
    else if (pairs.length < 32) this.#data = pairs.slice(0, lo * 2).concat([bucket, n], pairs.slice(lo * 2));
    else if (pairs.length < SPARSE_MAX * 2) pairs.splice(lo * 2, 0, bucket, n);
    else {
      const dense = new Uint32Array(BUCKETS);
      for (let i = 0; i < pairs.length; i += 2) dense[pairs[i]!] = pairs[i + 1]!;
      dense[bucket]! += n;
      this.#data = dense;
    }
  }

  /** Calls `f` with each bucket in use and its count, in bucket order. */
  #each(f: (bucket: number, count: number) => void): void {
    const data = this.#data;
    if (data === undefined) return;
    if (Array.isArray(data)) for (let i = 0; i < data.length; i += 2) f(data[i]!, data[i + 1]!);
    else for (let b = 0; b < data.length; b++) if (data[b]! > 0) f(b, data[b]!);
  }

  /** A new object each call (callers may keep or change it). */
  percentiles(): Percentiles {
    if (this.#read === undefined) {
      const total = this.#total;
      if (total === 0) this.#read = NO_SAMPLES;
      else {
        // As HdrHistogram: the value at which the running count reaches round(p% of the count), at least 1.
        const wanted = [50, 95, 99].map((p) => Math.max(1, Math.floor((p / 100) * total + 0.5)));
        const found: number[] = [];
        let seen = 0;
        this.#each((bucket, count) => {
          seen += count;
          while (found.length < wanted.length && seen >= wanted[found.length]!) found.push(Math.round(valueOf(bucket)));
        });
        this.#read = { count: total, p50: found[0], p95: found[1], p99: found[2] };
      }
    }
    return { ...this.#read };
  }

  /** Forgets every sample (and the counts' memory). */
  reset(): void {
    this.#data = undefined;
    this.#total = 0;
    this.#read = undefined;
  }

  /** Adds `other`'s samples to this one's. */
  absorb(other: LatencyHistogram): void {
    other.#each((bucket, count) => this.#add(bucket, count));
  }
}

/** The percentiles of a histogram not made yet (no samples) or made. */
export function percentilesOf(histogram: LatencyHistogram | undefined): Percentiles {
  return histogram ? histogram.percentiles() : { ...NO_SAMPLES };
}
