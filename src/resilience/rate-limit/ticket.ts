/**
 * A reservation as a `KeyLimiter` hands it out, carrying the limiter's
 * bookkeeping of it (no table per limiter, no map per reservation), and the
 * list of reservations still open, in send order.
 */
import type { Reservation } from './limits';

/**
 * A reservation and what it took: per window, the window's `taken` just
 * before it was recorded (the windows of the requests dimension's `all`,
 * then the tokens dimension's, as they were then; `all` only ever grows at
 * its end, so positions hold).
 */
export class Ticket implements Reservation {
  settled = false;
  answered = false;

  constructor(
    /** The limiter that handed it out. */
    readonly owner: object,
    readonly tokens: number,
    readonly at: number,
    readonly seq: number,
    /** Per window, its `taken` just before this reservation was recorded. */
    readonly before: readonly number[],
    /** How many of `before` are requests windows. */
    readonly requests: number,
    /** Bit 0: the requests' learnt window was an unlimited placeholder (counted in its sequence only); bit 1: the tokens'. */
    readonly counted: number,
    /** The position of the one window not recorded (an unlimited AIMD window); -1: none. */
    readonly skipped: number,
  ) {}

  /** The position in {@link before} of window `at` of a dimension's `all`; -1 when it came after this reservation. */
  index(tokens: boolean, at: number): number {
    if (tokens) return this.requests + at;
    return at < this.requests ? at : -1;
  }

  /** Whether the window at `index` recorded this reservation (a debt or a placeholder's count). */
  recorded(index: number): boolean {
    return index >= 0 && index !== this.skipped;
  }

  /** Whether the window at `index` was a placeholder then (its count is never reconciled). */
  placeholder(index: number, learnt: boolean): boolean {
    return learnt && (this.counted & (index < this.requests ? 1 : 2)) !== 0;
  }

  /** The window's `taken` once this reservation was recorded in it; undefined when it was not. */
  through(index: number): number | undefined {
    if (!this.recorded(index)) return undefined;
    return this.before[index]! + (index < this.requests ? 1 : this.tokens);
  }
}

/** Removes `seq` from `open` (ascending seqs); returns whether it was there. */
export function closeTicket(open: Ticket[], seq: number): boolean {
  let lo = 0;
  let hi = open.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = open[mid]!.seq;
    if (at === seq) {
      if (mid === 0) open.shift();
      else open.splice(mid, 1);
      return true;
    }
    if (at < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
