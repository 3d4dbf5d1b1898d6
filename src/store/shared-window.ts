/**
 * What a shared rate window means, in both stores: the same sliding ledger
 * the limiter keeps in-process (`LedgerWindow`), so that a key's limit holds
 * across replicas against every upstream shape — token bucket, sliding
 * window, fixed window.
 *
 * - A reservation at `at` (the store's clock) is counted as the upstream
 *   counts it: by `at + COUNT_LAG_MS` at the latest. It stays in the window
 *   a whole period after that, never less: at most `limit` units in any
 *   sliding period of the upstream's clock.
 * - Units are kept per slot of a 60th of the period (a second for a
 *   per-minute limit), under the slot's end: a reservation leaves with its
 *   slot, a period after the slot ends — at most a slot later than it has to
 *   (about 1.7% of the capacity, never over it). Memory is bounded by the
 *   slots of one period.
 * - An adjustment (a refund, usage above or below the estimate) names the
 *   reservation's `at`, so it changes the slot that holds it: a give-back
 *   never frees units of a later reservation; one for a reservation already
 *   out of the window changes nothing; a charge for one already out counts
 *   from now.
 *
 * `MemoryStore` runs this class; the Redis scripts (scripts.ts) run the same
 * arithmetic in Lua on a hash of `r:<slot end>` / `t:<slot end>` fields.
 */
import { MAX_COUNT_LAG_MS } from '../resilience/rate-limit/window';

/** How long after its reservation a request is taken to be counted by the upstream at the latest. */
export const COUNT_LAG_MS = MAX_COUNT_LAG_MS;
/** Slots per period. */
export const SLOTS_PER_PERIOD = 60;
/** Below this, a level and a need are taken as equal (float noise). */
export const EPSILON = 1e-6;
/** The period of a window whose period is not given. */
export const DEFAULT_PERIOD_MS = 60_000;

/** A usable period, else a minute. */
export function periodOf(periodMs: number | undefined): number {
  return periodMs !== undefined && Number.isFinite(periodMs) && periodMs > 0 ? periodMs : DEFAULT_PERIOD_MS;
}

/** The width of a period's slots (whole ms). */
export function slotWidth(periodMs: number): number {
  return Math.max(1, Math.ceil(periodMs / SLOTS_PER_PERIOD));
}

/** The end of the slot that counts a reservation made at `at` (whole ms). */
export function slotEnd(at: number, periodMs: number): number {
  const width = slotWidth(periodMs);
  return (Math.floor((at + COUNT_LAG_MS) / width) + 1) * width;
}

/**
 * One dimension (requests or tokens) of a key's shared window: units per slot
 * end. Every call passes the clock and the period in force; a period whose
 * slots are of another width moves each slot to the end of the new slot that
 * holds it (later, never earlier), as the Redis script does.
 */
export class SlidingSlots {
  #slots = new Map<number, number>();
  #width = 0;

  /** Brings the slots to `now` and `periodMs`: slots a period past their end leave. */
  #settle(now: number, periodMs: number): void {
    const width = slotWidth(periodMs);
    if (width !== this.#width && this.#slots.size > 0) {
      const moved = new Map<number, number>();
      for (const [end, units] of this.#slots) {
        if (end + periodMs <= now) continue;
        const to = Math.ceil(end / width) * width;
        moved.set(to, (moved.get(to) ?? 0) + units);
      }
      this.#slots = moved;
    }
    this.#width = width;
    for (const end of this.#slots.keys()) if (end + periodMs <= now) this.#slots.delete(end);
  }

  /** Units in the window at `now`. */
  used(now: number, periodMs: number): number {
    this.#settle(now, periodMs);
    let used = 0;
    for (const units of this.#slots.values()) used += units;
    return used;
  }

  /** Counts `units` taken at `now`. */
  take(units: number, now: number, periodMs: number): void {
    if (units <= 0) return;
    this.#settle(now, periodMs);
    const end = slotEnd(now, periodMs);
    this.#slots.set(end, (this.#slots.get(end) ?? 0) + units);
  }

  /**
   * Changes the reservation made at `at` by `delta` units: a give-back from
   * its slot (never below 0; nothing when the slot has left), a charge to its
   * slot (or, when that has left, to now's).
   */
  adjust(at: number, delta: number, now: number, periodMs: number): void {
    this.#settle(now, periodMs);
    if (delta === 0) return;
    let end = slotEnd(at, periodMs);
    const live = end + periodMs > now;
    if (delta > 0) {
      if (!live) end = slotEnd(now, periodMs);
      this.#slots.set(end, (this.#slots.get(end) ?? 0) + delta);
      return;
    }
    const held = live ? this.#slots.get(end) : undefined;
    if (held === undefined) return;
    const left = Math.max(0, held + delta);
    if (left > 0) this.#slots.set(end, left);
    else this.#slots.delete(end);
  }

  /**
   * Whole ms until `need` units fit under `limit` (0: they do now), as the
   * oldest slots leave; -1 when `need` exceeds the limit (never). Call after
   * {@link used} at the same `now`, with what it returned.
   */
  waitMs(need: number, limit: number, used: number, now: number, periodMs: number): number {
    if (need <= 0) return 0;
    if (need > limit + EPSILON) return -1;
    let excess = used + need - limit;
    if (excess <= EPSILON || this.#slots.size === 0) return 0;
    const ends = [...this.#slots.keys()].sort((a, b) => a - b);
    for (const end of ends) {
      excess -= this.#slots.get(end)!;
      if (excess <= EPSILON) return Math.ceil(end + periodMs - now);
    }
    // Float noise only: by the newest slot's end everything has left.
    return Math.ceil(ends[ends.length - 1]! + periodMs - now);
  }

  /** Whole ms until the oldest slot leaves (the window's next units free); `undefined` when it is empty. */
  freeMs(now: number, periodMs: number): number | undefined {
    let oldest = Infinity;
    for (const end of this.#slots.keys()) oldest = Math.min(oldest, end);
    return oldest === Infinity ? undefined : Math.ceil(oldest + periodMs - now);
  }

  /** Forgets every slot (the dimension lost its limit). */
  clear(): void {
    this.#slots.clear();
  }
}
