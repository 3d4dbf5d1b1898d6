/**
 * One dimension (requests or tokens) of a `KeyLimiter`: its configured
 * windows, the window learnt from headers, and the learner of that window's
 * period — one object per key and dimension (internal to the limiter).
 */
import { MINUTE_MS } from './options';
import { PeriodLearner } from './period';
import { LedgerWindow, type WindowSpec } from './window';

/** The learnt window's capacity while nothing is learnt (shared: never changed). */
export const UNLIMITED: WindowSpec = Object.freeze({ limit: Infinity, periodMs: MINUTE_MS });

/** No windows (frozen: shared by every limiter). */
export const NO_WINDOWS: readonly LedgerWindow[] = Object.freeze([]);

/**
 * A dimension's windows. It is the learnt window's {@link PeriodLearner}
 * itself (a learner left as a fresh one, `clear()`ed, until a header snapshot
 * of the dimension arrives), so a key holds one object per dimension, not two.
 */
export class Dimension extends PeriodLearner {
  /** Configured windows, shortest period first. */
  readonly config: readonly LedgerWindow[];
  /** The window learnt from headers (unlimited until learnt). */
  readonly learnt: LedgerWindow;
  learntLimit: number | undefined = undefined;
  /** Every window: each reservation is recorded in all, so none misses a send (`withLearnt`, plus the AIMD window once made). */
  all: readonly LedgerWindow[];
  /** The learnt window alone (the same array as {@link withLearnt} when nothing is configured). */
  readonly learntOnly: readonly LedgerWindow[];

  constructor(specs: readonly WindowSpec[]) {
    super();
    this.config = specs.length === 0 ? NO_WINDOWS : specs.map((spec) => new LedgerWindow(spec));
    this.learnt = new LedgerWindow(UNLIMITED);
    // concat, not a spread: arrays of exactly their length (a spread leaves room for 16 more, per key).
    // Arrays with the same windows are one array (none is ever changed: `all` is replaced, not pushed to).
    this.learntOnly = [this.learnt];
    this.all = this.config.length === 0 ? this.learntOnly : this.config.concat(this.learntOnly);
  }

  /**
   * The configured windows and the learnt one, in force once a limit was
   * learnt (arrays made once: read on every pick). With windows configured,
   * `all` is that array for good (the AIMD window is only ever added without
   * them); without, the learnt window alone. A getter, not a field: one
   * field less per key and dimension.
   */
  get withLearnt(): readonly LedgerWindow[] {
    return this.config.length === 0 ? this.learntOnly : this.all;
  }

  /**
   * After a wait for `units` past `by` (a deadline) in `windows` (this
   * dimension's in force): the last moment replies to the requests in flight
   * would still make room by then in all of them
   * ({@link LedgerWindow.hopeUntil}); `Infinity` when none stands in the way;
   * `-Infinity` when no reply would help, or a 429's rest lasts past `by`
   * (it closes the learnt window even while nothing is known of its limit).
   */
  hopeUntil(windows: readonly LedgerWindow[], units: number, now: number, by: number): number {
    if (units > 0 && this.learnt.blockedUntil > by) return -Infinity;
    let until = Infinity;
    for (const window of windows) until = Math.min(until, window.hopeUntil(units, now, by));
    return until;
  }
}
