/**
 * A duration measured on the wall clock (`Date.now()`), as events, errors,
 * hooks and stats report it: never below 0. A clock stepped back between the
 * two readings (NTP, a resumed VM, a clock set by hand) would make it
 * negative by the step; it reads 0 instead. (A clock stepped forward makes it
 * longer by the step: that is not told from time passed.)
 */
export function elapsedMs(since: number, now: number): number {
  return now > since ? now - since : 0;
}
