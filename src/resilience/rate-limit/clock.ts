/**
 * A rate limiter's time: its clock (epoch ms, `Date.now` by default) made
 * never to go back. A reading a little behind the last (made a moment before
 * another request's) is taken as the last. A clock stepped back further than
 * {@link CLOCK_STEP_MS} (NTP, a VM moved or resumed, a clock set by hand)
 * goes on from where the limiter's time was, so that what the windows hold,
 * rests and caps keep their lengths, instead of standing still until the
 * clock catches up (an hour's step closed a window of a minute for an hour).
 * The step is found at the first reading after it: the time from the
 * reading before (or from a moment a timer vouches for, {@link
 * LimiterClock.reached}) to the step is not counted, which holds what the
 * windows hold a little longer, never shorter. Moments from outside (a
 * deadline, the headers' dates) are on the clock: {@link LimiterClock.skew}
 * converts. A clock stepped forward is not told from time passed: the
 * windows free early, as before. A base class, not a field: no object more
 * per limiter (one per key).
 */

import { CLOCK_STEP_MS } from '../../wall-clock';

export class LimiterClock {
  readonly #clock: () => number;
  #last = -Infinity;
  #skew = 0;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** How far the limiter's time runs ahead of the clock: the sum of the clock's steps back. */
  protected get skew(): number {
    return this.#skew;
  }

  /** The limiter's time at the clock reading `reading` (one just made). */
  time(reading: number): number {
    return this.now(reading);
  }

  /**
   * A timer (monotonic) says the limiter's time has reached `at` at least
   * (a moment of that time, from {@link time}): a clock stepped back since
   * is then found to be that much further behind.
   */
  reached(at: number): void {
    if (at > this.#last) this.#last = at;
  }

  /** The limiter's time at the clock reading `t` (default: read now). */
  protected now(t: number = this.#clock()): number {
    if (Number.isFinite(t)) {
      const at = t + this.#skew;
      if (at > this.#last) this.#last = at;
      else if (at < this.#last - CLOCK_STEP_MS) this.#skew += this.#last - at;
    }
    return Number.isFinite(this.#last) ? this.#last : 0;
  }
}
