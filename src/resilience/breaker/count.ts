/** Breaker policy: failure ratio over the last N calls. */
import type { BreakerPolicy } from './policy';
import { assertNoIssue, isPlainObject, issue, optionsIssue, type OptionIssue, type OptionRules } from './validate';

/** Options of {@link CountBreaker}. */
export interface CountBreakerOptions {
  /** Failure ratio that opens the circuit, above 0 and up to 1 (default 0.5). */
  threshold?: number;
  /** Calls remembered: a whole number from 1 to 10 000 (default 20). */
  size?: number;
  /**
   * Calls that must be remembered before the ratio counts: a whole number from
   * 1 to `size` (default 10, or `size` when that is smaller).
   */
  minimumCalls?: number;
}

/** Snapshot of a {@link CountBreaker}: the remembered outcomes, oldest first, 1 a failure and 0 a success. */
export interface CountBreakerState {
  kind: 'count';
  samples: Array<0 | 1>;
}

/** The largest `size`: the ring buffer is allocated up front. */
export const MAX_COUNT_SIZE = 10_000;

const RULES: OptionRules = {
  threshold: { min: 0, minExclusive: true, max: 1, expected: 'a failure ratio above 0 and up to 1' },
  size: { integer: true, min: 1, max: MAX_COUNT_SIZE, expected: `a whole number of calls from 1 to ${MAX_COUNT_SIZE}` },
  minimumCalls: { integer: true, min: 1, max: MAX_COUNT_SIZE, expected: 'a whole number of calls from 1 up to `size`' },
};

/** Checks {@link CountBreakerOptions}; `extraKeys` are also allowed (e.g. a spec's `kind`). */
export function countOptionsIssue(options: unknown, extraKeys: readonly string[] = []): OptionIssue | undefined {
  const found = optionsIssue(options, RULES, extraKeys);
  if (found || options === undefined) return found;
  const { size = 20, minimumCalls } = options as CountBreakerOptions;
  if (minimumCalls !== undefined && minimumCalls > size) {
    return issue('minimumCalls', `expected at most \`size\` (${size}) calls, or the circuit could never open; got ${minimumCalls}`, 'RangeError');
  }
  return undefined;
}

/**
 * Opens the circuit when, among the last `size` calls, the share of failures
 * reaches `threshold` — once at least `minimumCalls` calls are remembered.
 * The calls sit in a ring buffer: each new one pushes the oldest out.
 */
export class CountBreaker implements BreakerPolicy {
  /** Failure ratio that opens the circuit. */
  readonly threshold: number;
  /** Calls remembered. */
  readonly size: number;
  /** Calls remembered before the ratio counts. */
  readonly minimumCalls: number;
  /** 1 failure, 0 success; valid from `#start` for `#length` entries, wrapping. */
  readonly #ring: Uint8Array;
  #start = 0;
  #length = 0;
  #failures = 0;

  /** @throws TypeError or RangeError naming the bad option. */
  constructor(options: CountBreakerOptions = {}) {
    assertNoIssue(countOptionsIssue(options), 'CountBreaker option');
    this.threshold = options.threshold ?? 0.5;
    this.size = options.size ?? 20;
    this.minimumCalls = options.minimumCalls ?? Math.min(10, this.size);
    this.#ring = new Uint8Array(this.size);
  }

  /** Remembers a success, pushing out the oldest call when full. */
  success(_now: number): void {
    this.#push(0);
  }

  /** Remembers a failure; true when at least `minimumCalls` calls are remembered and their failure ratio reaches `threshold`. */
  failure(_now: number): boolean {
    this.#push(1);
    return this.#length >= this.minimumCalls && this.#failures / this.#length >= this.threshold;
  }

  /** Forgets every call. */
  reset(): void {
    this.#start = 0;
    this.#length = 0;
    this.#failures = 0;
  }

  /** `{ kind: 'count', samples }`, oldest first. */
  get state(): CountBreakerState {
    const samples: Array<0 | 1> = [];
    for (let i = 0; i < this.#length; i++) samples.push(this.#ring[(this.#start + i) % this.size] === 1 ? 1 : 0);
    return { kind: 'count', samples };
  }

  /** Restores the samples; of a longer history (a larger `size` elsewhere) only the newest `size` are kept. */
  restore(state: unknown): void {
    if (!isPlainObject(state) || state.kind !== 'count' || !Array.isArray(state.samples) || !state.samples.every((s) => s === 0 || s === 1)) {
      throw new TypeError("Cannot restore a CountBreaker: expected { kind: 'count', samples: an array of 0 (success) and 1 (failure) }");
    }
    this.reset();
    for (const sample of (state.samples as Array<0 | 1>).slice(-this.size)) this.#push(sample);
  }

  #push(sample: 0 | 1): void {
    if (this.#length < this.size) {
      this.#ring[(this.#start + this.#length) % this.size] = sample;
      this.#length++;
    } else {
      this.#failures -= this.#ring[this.#start] ?? 0;
      this.#ring[this.#start] = sample;
      this.#start = (this.#start + 1) % this.size;
    }
    this.#failures += sample;
  }
}
