/**
 * The breaker policy: the part of a circuit breaker that decides, from the
 * outcomes seen while the circuit is closed, when it should open. The
 * state machine around it (open time, half-open probes) is `Circuit`.
 */

/**
 * Decides, from outcomes while closed, when a circuit should open. Serialisable
 * state for a shared store.
 *
 * A policy is pure and deterministic: it never reads a clock or starts a
 * timer; the circuit passes the time of each outcome in. One policy serves one
 * circuit (scope), so a custom one is plugged in as a factory, called once
 * per circuit:
 *
 * ```ts
 * function twoStrikes(): BreakerPolicy {
 *   let failures = 0;
 *   return {
 *     success: () => { failures = 0; },
 *     failure: () => ++failures >= 2,
 *     reset: () => { failures = 0; },
 *     get state() { return { failures }; },
 *     restore: (state) => { failures = (state as { failures: number }).failures; },
 *   };
 * }
 * new KeyManager({ providers, circuitBreaker: { key: { policy: twoStrikes } } });
 * ```
 */
export interface BreakerPolicy {
  /** Records a success at `now` (ms epoch). */
  success(now: number): void;
  /** Records a failure at `now` (ms epoch); true when the circuit should open now. */
  failure(now: number): boolean;
  /** Forget everything (called when the circuit closes or opens). */
  reset(): void;
  /** JSON-safe snapshot. */
  readonly state: unknown;
  /**
   * Replaces the policy's memory with a snapshot taken from `state` (possibly
   * by another process). Throws a `TypeError`, and changes nothing, when the
   * snapshot is not one this policy understands.
   */
  restore(state: unknown): void;
}
