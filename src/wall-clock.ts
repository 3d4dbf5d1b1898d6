/**
 * Readings of the wall clock (`Date.now()`) that a clock stepped back (NTP
 * correcting a fast clock, a VM moved or resumed, a clock set by hand) must
 * not turn into nonsense: a duration below 0, or a wait that lasts the step.
 * (A clock stepped forward is not told from time passed.)
 */

/** A reading this far (ms) behind what a timer vouches for, or behind an earlier reading, is the clock stepped back (not a coarse clock, nor a reading made a moment before another's). */
export const CLOCK_STEP_MS = 1_000;

/** A duration between two readings, as events, errors, hooks and stats report it: never below 0 (a clock stepped back between them reads 0). */
export function elapsedMs(since: number, now: number): number {
  return now > since ? now - since : 0;
}

/**
 * When a wait of `lengthMs` that ends at `until` ends, as seen at `now`:
 * never further ahead than its length. A clock stepped back since it began
 * would put its end that much later; what runs it on a timer (monotonic)
 * ends it on time.
 */
export function endWithin(until: number, lengthMs: number, now: number): number {
  return until - now > lengthMs ? now + lengthMs : until;
}
