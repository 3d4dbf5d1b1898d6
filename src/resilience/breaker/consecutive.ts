/** Breaker policy: open after a run of failures with no success in between. */
import { DEFAULTS } from '../../config/defaults';
import type { BreakerPolicy } from './policy';
import { assertNoIssue, isCount, isPlainObject, optionsIssue, type OptionIssue, type OptionRules } from './validate';

/** Options of {@link ConsecutiveBreaker}. */
export interface ConsecutiveBreakerOptions {
  /** Failures in a row that open the circuit: a whole number from 1 up (default 5). */
  threshold?: number;
}

/** Snapshot of a {@link ConsecutiveBreaker}: failures in a row so far. */
export interface ConsecutiveBreakerState {
  kind: 'consecutive';
  failures: number;
}

const RULES: OptionRules = {
  threshold: { integer: true, min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a whole number of failures from 1 up' },
};

/** Checks {@link ConsecutiveBreakerOptions}; `extraKeys` are also allowed (e.g. a spec's `kind`). */
export function consecutiveOptionsIssue(options: unknown, extraKeys: readonly string[] = []): OptionIssue | undefined {
  return optionsIssue(options, RULES, extraKeys);
}

/**
 * Opens the circuit after `threshold` failures in a row; any success starts
 * the count again.
 */
export class ConsecutiveBreaker implements BreakerPolicy {
  /** Failures in a row that open the circuit. */
  readonly threshold: number;
  #failures = 0;

  /** @throws TypeError or RangeError naming the bad option. */
  constructor(options: ConsecutiveBreakerOptions = {}) {
    assertNoIssue(consecutiveOptionsIssue(options), 'ConsecutiveBreaker option');
    this.threshold = options.threshold ?? DEFAULTS.circuit.policy.threshold;
  }

  /** A success: the run of failures is over. */
  success(_now: number): void {
    this.#failures = 0;
  }

  /** A failure; true once `threshold` have come in a row. */
  failure(_now: number): boolean {
    this.#failures = Math.min(this.#failures + 1, Number.MAX_SAFE_INTEGER);
    return this.#failures >= this.threshold;
  }

  /** Forgets the failures so far. */
  reset(): void {
    this.#failures = 0;
  }

  /** `{ kind: 'consecutive', failures }`. */
  get state(): ConsecutiveBreakerState {
    return { kind: 'consecutive', failures: this.#failures };
  }

  /** Takes the failure count of a `state` snapshot; a `TypeError`, changing nothing, for anything else. */
  restore(state: unknown): void {
    if (!isPlainObject(state) || state.kind !== 'consecutive' || !isCount(state.failures)) {
      throw new TypeError("Cannot restore a ConsecutiveBreaker: expected { kind: 'consecutive', failures: a whole number ≥ 0 }");
    }
    this.#failures = state.failures;
  }
}
