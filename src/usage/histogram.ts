/**
 * Latency percentiles from a log-linear histogram: whole ms from 1 ms to 1
 * hour, exact below 128 ms and in 64 buckets per doubling above (a value is
 * reported as its bucket's middle: within 0.8%, 2 significant digits). Its
 * counts are made at the first sample: dense (1,088 counts, 4.3 KiB) for the
 * few scopes of a manager, or sparse (8 bytes per bucket in use, grown on
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
/** Entries a sparse histogram holds before it turns dense (8 bytes each, against 4 per bucket dense). */
const SPARSE_MAX = BUCKETS / 2;
/** A sparse entry is `bucket * SPAN + count`: one double (unboxed in the array), in bucket order. */
const SPAN = 2 ** 32;
/** The counts of a compact histogram with no samples yet (shared; never changed). */
const EMPTY: readonly number[] = Object.freeze([]);
/** A dense array of this length is a compact histogram's that turned dense (it stays compact after a reset). */
const COMPACT_DENSE = BUCKETS + 1;

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

/**
 * The counts: `undefined` (dense, no samples yet), {@link EMPTY} (sparse, no
 * samples yet), sparse entries, or a count per bucket.
 */
type Counts = Uint32Array | readonly number[] | undefined;

/** `data` with `n` more samples in `bucket` (the same array, or a new one when it had to change shape or grow). */
function added(data: Counts, bucket: number, n: number): Counts {
  if (data === undefined) {
    const dense = new Uint32Array(BUCKETS);
    dense[bucket] = n;
    return dense;
  }
  if (!Array.isArray(data)) {
    (data as Uint32Array)[bucket]! += n;
    return data;
  }
  const entries = data as number[];
  const low = bucket * SPAN;
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]! < low) lo = mid + 1;
    else hi = mid;
  }
  if (lo < entries.length && entries[lo]! < low + SPAN) {
    entries[lo] = Math.min(entries[lo]! + n, low + SPAN - 1);
    return entries;
  }
  // A short list is copied at its exact length (a splice leaves room for more, per key); a long one grows.
  if (entries.length < 16) return entries.slice(0, lo).concat([low + n], entries.slice(lo));
  if (entries.length < SPARSE_MAX) {
    entries.splice(lo, 0, low + n);
    return entries;
  }
  const dense = new Uint32Array(COMPACT_DENSE);
  each(entries, (b, count) => void (dense[b] = count));
  dense[bucket]! += n;
  return dense;
}

/** Calls `f` with each bucket in use and its count, in bucket order. */
function each(data: Counts, f: (bucket: number, count: number) => void): void {
  if (data === undefined) return;
  if (Array.isArray(data)) {
    for (const entry of data as readonly number[]) {
      const bucket = Math.floor(entry / SPAN);
      f(bucket, entry - bucket * SPAN);
    }
  } else for (let b = 0; b < data.length; b++) if ((data as Uint32Array)[b]! > 0) f(b, (data as Uint32Array)[b]!);
}

export class LatencyHistogram {
  /** The counts, made at the first sample (see {@link Counts}): two fields per histogram, as there may be thousands. */
  #data: Counts;
  /** The last percentiles read, until the next sample or reset (stats() of idle scopes costs nothing). */
  #read: Percentiles | undefined;

  /**
   * @param compact sparse counts, grown on demand (8 bytes per bucket in
   *   use): for scopes there may be thousands of, such as keys. Either way
   *   the counts are made at the first sample.
   */
  constructor(compact = false) {
    this.#data = compact ? EMPTY : undefined;
    this.#read = undefined;
  }

  /** Records one duration in ms (rounded, clamped to 1 ms – 1 h). */
  record(ms: number): void {
    this.#data = added(this.#data, bucketOf(Math.min(HIGHEST_MS, Math.max(1, Math.round(ms)))), 1);
    this.#read = undefined;
  }

  /** A new object each call (callers may keep or change it). */
  percentiles(): Percentiles {
    if (this.#read === undefined) {
      let total = 0;
      each(this.#data, (_bucket, count) => void (total += count));
      if (total === 0) this.#read = NO_SAMPLES;
      else {
        // As HdrHistogram: the value at which the running count reaches round(p% of the count), at least 1.
        const wanted = [50, 95, 99].map((p) => Math.max(1, Math.floor((p / 100) * total + 0.5)));
        const found: number[] = [];
        let seen = 0;
        each(this.#data, (bucket, count) => {
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
    const data = this.#data;
    this.#data = data === undefined || (!Array.isArray(data) && data.length === BUCKETS) ? undefined : EMPTY;
    this.#read = undefined;
  }

  /** Adds `other`'s samples to this one's. */
  absorb(other: LatencyHistogram): void {
    each(other.#data, (bucket, count) => void (this.#data = added(this.#data, bucket, count)));
    this.#read = undefined;
  }
}

/** The percentiles of a histogram not made yet (no samples) or made. */
export function percentilesOf(histogram: LatencyHistogram | undefined): Percentiles {
  return histogram ? histogram.percentiles() : { ...NO_SAMPLES };
}
