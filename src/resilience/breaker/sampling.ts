/** Breaker policy: failure ratio over a sliding time window, kept in buckets. */
import type { BreakerPolicy } from './policy';
import { assertNoIssue, isCount, isPlainObject, issue, optionsIssue, type OptionIssue, type OptionRules } from './validate';

/** Options of {@link SamplingBreaker}. */
export interface SamplingBreakerOptions {
  /** Failure ratio that opens the circuit, above 0 and up to 1 (default 0.5). */
  threshold?: number;
  /** Length of the window in ms (default 30 000); at least one ms a bucket. */
  windowMs?: number;
  /** Buckets the window is kept in: a whole number from 1 to 1 000 (default 10). */
  buckets?: number;
  /** Calls the window must hold before the ratio counts: a whole number from 1 up (default 10). */
  minimumCalls?: number;
}

/** One bucket of a {@link SamplingBreakerState}. */
export interface SamplingBucketState {
  /** `floor(time / bucketMs)` of the calls it holds. */
  slot: number;
  successes: number;
  failures: number;
}

/**
 * Snapshot of a {@link SamplingBreaker}: its live, non-empty buckets, oldest
 * first. `bucketMs` lets a breaker with another bucket length re-bucket them.
 */
export interface SamplingBreakerState {
  kind: 'sampling';
  bucketMs: number;
  buckets: SamplingBucketState[];
}

/** The largest `buckets`: the buckets are allocated up front. */
export const MAX_SAMPLING_BUCKETS = 1_000;

const RULES: OptionRules = {
  threshold: { min: 0, minExclusive: true, max: 1, expected: 'a failure ratio above 0 and up to 1' },
  windowMs: { min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a window length in ms from 1 up' },
  buckets: { integer: true, min: 1, max: MAX_SAMPLING_BUCKETS, expected: `a whole number of buckets from 1 to ${MAX_SAMPLING_BUCKETS}` },
  minimumCalls: { integer: true, min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a whole number of calls from 1 up' },
};

/** Checks {@link SamplingBreakerOptions}; `extraKeys` are also allowed (e.g. a spec's `kind`). */
export function samplingOptionsIssue(options: unknown, extraKeys: readonly string[] = []): OptionIssue | undefined {
  const found = optionsIssue(options, RULES, extraKeys);
  if (found || options === undefined) return found;
  const { windowMs = 30_000, buckets = 10 } = options as SamplingBreakerOptions;
  if (buckets > windowMs) {
    return issue('buckets', `expected at most \`windowMs\` (${windowMs}) buckets, so that each lasts at least 1 ms; got ${buckets}`, 'RangeError');
  }
  return undefined;
}

/**
 * Opens the circuit when, among the calls of the last `windowMs`, the share
 * of failures reaches `threshold` — once the window holds at least
 * `minimumCalls` calls.
 *
 * The window slides a bucket at a time: time is cut into buckets of
 * `windowMs / buckets` ms (bucket `n` holds the calls from `n·bucketMs` to
 * `(n+1)·bucketMs`), and the window is the current bucket and the
 * `buckets − 1` before it. A time earlier than one already seen (a clock
 * stepping back) counts in the newest bucket.
 */
export class SamplingBreaker implements BreakerPolicy {
  /** Failure ratio that opens the circuit. */
  readonly threshold: number;
  /** Length of the window in ms. */
  readonly windowMs: number;
  /** Buckets the window is kept in. */
  readonly buckets: number;
  /** Calls the window must hold before the ratio counts. */
  readonly minimumCalls: number;
  /** Length of one bucket in ms. */
  readonly bucketMs: number;
  readonly #slots: number[];
  readonly #successes: number[];
  readonly #failures: number[];
  /** Newest slot seen. */
  #latest = Number.NEGATIVE_INFINITY;

  /** @throws TypeError or RangeError naming the bad option. */
  constructor(options: SamplingBreakerOptions = {}) {
    assertNoIssue(samplingOptionsIssue(options), 'SamplingBreaker option');
    this.threshold = options.threshold ?? 0.5;
    this.windowMs = options.windowMs ?? 30_000;
    this.buckets = options.buckets ?? 10;
    this.minimumCalls = options.minimumCalls ?? 10;
    this.bucketMs = this.windowMs / this.buckets;
    this.#slots = new Array<number>(this.buckets).fill(Number.NEGATIVE_INFINITY);
    this.#successes = new Array<number>(this.buckets).fill(0);
    this.#failures = new Array<number>(this.buckets).fill(0);
  }

  /** Counts a success in the bucket of `now`. */
  success(now: number): void {
    this.#add(this.#slotAt(now), 1, 0);
  }

  /** Counts a failure in the bucket of `now`; true when the window holds at least `minimumCalls` calls and their failure ratio reaches `threshold`. */
  failure(now: number): boolean {
    this.#add(this.#slotAt(now), 0, 1);
    let successes = 0;
    let failures = 0;
    for (let i = 0; i < this.buckets; i++) {
      if (this.#live(this.#slots[i] ?? Number.NEGATIVE_INFINITY)) {
        successes += this.#successes[i] ?? 0;
        failures += this.#failures[i] ?? 0;
      }
    }
    const total = successes + failures;
    return total >= this.minimumCalls && failures / total >= this.threshold;
  }

  /** Empties every bucket. */
  reset(): void {
    this.#slots.fill(Number.NEGATIVE_INFINITY);
    this.#successes.fill(0);
    this.#failures.fill(0);
    this.#latest = Number.NEGATIVE_INFINITY;
  }

  /** `{ kind: 'sampling', bucketMs, buckets }`: the live, non-empty buckets, oldest first. */
  get state(): SamplingBreakerState {
    const buckets: SamplingBucketState[] = [];
    for (let i = 0; i < this.buckets; i++) {
      const slot = this.#slots[i] ?? Number.NEGATIVE_INFINITY;
      const successes = this.#successes[i] ?? 0;
      const failures = this.#failures[i] ?? 0;
      if (this.#live(slot) && successes + failures > 0) buckets.push({ slot, successes, failures });
    }
    buckets.sort((a, b) => a.slot - b.slot);
    return { kind: 'sampling', bucketMs: this.bucketMs, buckets };
  }

  /**
   * Restores the buckets. Buckets of another length (`bucketMs` differs) are
   * moved into the bucket holding their start time; buckets too old for this
   * window are dropped.
   */
  restore(state: unknown): void {
    const buckets = isPlainObject(state) && state.kind === 'sampling' && isPositive(state.bucketMs) ? state.buckets : undefined;
    if (!Array.isArray(buckets) || !buckets.every(isBucket)) {
      throw new TypeError(
        "Cannot restore a SamplingBreaker: expected { kind: 'sampling', bucketMs: a number above 0, buckets: [{ slot, successes, failures }] }",
      );
    }
    const scale = (state as SamplingBreakerState).bucketMs / this.bucketMs;
    const moved = buckets
      .map((b) => ({ ...b, slot: scale === 1 ? b.slot : Math.floor(b.slot * scale) }))
      .sort((a, b) => a.slot - b.slot);
    this.reset();
    for (const b of moved) {
      this.#latest = Math.max(this.#latest, b.slot);
      this.#add(b.slot, b.successes, b.failures);
    }
  }

  #slotAt(now: number): number {
    this.#latest = Math.max(this.#latest, Math.floor(now / this.bucketMs));
    return this.#latest;
  }

  /** Whether a bucket with this slot is inside the window that ends with the newest slot. */
  #live(slot: number): boolean {
    return slot > this.#latest - this.buckets && slot <= this.#latest;
  }

  #add(slot: number, successes: number, failures: number): void {
    const index = ((slot % this.buckets) + this.buckets) % this.buckets;
    if (this.#slots[index] !== slot) {
      this.#slots[index] = slot;
      this.#successes[index] = 0;
      this.#failures[index] = 0;
    }
    this.#successes[index] = (this.#successes[index] ?? 0) + successes;
    this.#failures[index] = (this.#failures[index] ?? 0) + failures;
  }
}

function isPositive(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

function isBucket(value: unknown): value is SamplingBucketState {
  return isPlainObject(value) && Number.isSafeInteger(value.slot) && isCount(value.successes) && isCount(value.failures);
}
