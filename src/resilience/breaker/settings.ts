/**
 * A circuit's options, the transitions it reports, and its checked settings
 * (shared by the circuits of a family).
 */
import { DEFAULTS } from '../../config/defaults';
import { makeBreakerPolicy, type BreakerSpec } from './create';
import type { BreakerPolicy } from './policy';
import { assertNoIssue, describe, issue, optionsIssue, type NumberRule, type OptionRules } from './validate';

/** Where a circuit is: `closed` lets calls through, `open` refuses them, `half-open` lets probes through. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Options of a circuit. */
export interface CircuitOptions {
  /** What opens the circuit (default `'consecutive'`: 5 failures in a row). */
  policy?: BreakerSpec;
  /**
   * How long the circuit stays open before half-open, in ms (default 30_000).
   * In `new KeyManager()` options: > 0 and at most 2^31 − 1 ms (about 24.8 days).
   */
  openMs?: number;
  /**
   * When set, each re-open while failures repeat doubles the open time up to
   * this cap (backoff); reset when it closes. At least `openMs`; in
   * `new KeyManager()` options at most 2^31 − 1 ms (default 300_000 there).
   */
  maxOpenMs?: number;
  /** Probes let through while half-open (default 1; in `new KeyManager()` options 1 to 1000); other callers are refused until the probes settle. */
  halfOpenProbes?: number;
}

/** Why a circuit changed state. */
export type CircuitChangeReason = 'failures' | 'probe_failed' | 'open_elapsed' | 'probe_succeeded' | 'restored' | 'manual';

/** The default clock (one function for every circuit). */
export const systemNow = (): number => Date.now();

/** One state transition, as passed to the circuit's `onChange`. */
export interface CircuitChange {
  from: CircuitState;
  to: CircuitState;
  reason: CircuitChangeReason;
  /** When `to` is `open`: how long it stays open from now, in ms. */
  openMs?: number;
}

export const OPEN_MS: NumberRule = { min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'an open time in ms from 1 up' };

const RULES: OptionRules = {
  openMs: OPEN_MS,
  maxOpenMs: { min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a cap on the open time in ms from 1 up' },
  halfOpenProbes: { integer: true, min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a whole number of probes from 1 up' },
};

const WHAT = 'circuit option';

/** A circuit's checked options, listener and clock (shared by the circuits of a family). */
export class CircuitSettings<C> {
  readonly openMs: number;
  readonly maxOpenMs: number | undefined;
  readonly halfOpenProbes: number;
  readonly policy: BreakerSpec;
  /**
   * The policy is made at the first failure (and dropped at each reset): a
   * built-in `consecutive` one, fresh, ignores successes, so a circuit that
   * never failed needs none. Other policies are made with the circuit.
   */
  readonly lazyPolicy: boolean;
  readonly onChange: (change: CircuitChange, circuit: C) => void;
  readonly now: () => number;

  constructor(options: CircuitOptions | undefined, onChange: (change: CircuitChange, circuit: C) => void, now: () => number) {
    assertNoIssue(optionsIssue(options, RULES, ['policy']), WHAT);
    options ??= {};
    if (typeof onChange !== 'function') throw new TypeError(`Invalid circuit argument \`onChange\`: expected a function; got ${describe(onChange)}`);
    if (typeof now !== 'function') throw new TypeError(`Invalid circuit argument \`now\`: expected a function; got ${describe(now)}`);
    this.openMs = options.openMs ?? DEFAULTS.circuit.openMs;
    this.maxOpenMs = options.maxOpenMs;
    if (this.maxOpenMs !== undefined && this.maxOpenMs < this.openMs) {
      assertNoIssue(issue('maxOpenMs', `expected at least \`openMs\` (${this.openMs}); got ${this.maxOpenMs}`, 'RangeError'), WHAT);
    }
    this.halfOpenProbes = options.halfOpenProbes ?? DEFAULTS.circuit.halfOpenProbes;
    const policy = options.policy ?? 'consecutive';
    this.policy = policy;
    this.lazyPolicy = policy === 'consecutive' || (typeof policy === 'object' && policy !== null && policy.kind === 'consecutive');
    // A lazy policy's spec is still checked now, once: a bad one fails at construction, not at the first failure.
    if (this.lazyPolicy) this.makePolicy();
    this.onChange = onChange;
    this.now = now;
  }

  /** A fresh policy for one circuit. */
  makePolicy(): BreakerPolicy {
    return makeBreakerPolicy(this.policy, WHAT, 'policy');
  }
}
