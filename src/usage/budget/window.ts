/**
 * The spend windows behind budgets: a calendar window that resets at UTC
 * boundaries, and a rolling window kept in buckets. Both are pure: they read
 * the time only from the `now` they are given, set no timers, and count in
 * whole nano-dollars so that sums and expiries are exact.
 */

/** How long a budget's window is: a minute, an hour, a day or a month. */
export type BudgetWindow = 'minute' | 'hour' | 'day' | 'month';

/** How a budget's window moves: at UTC boundaries, or sliding over the last period. */
export type BudgetMode = 'calendar' | 'rolling';

/** Nano-dollars (1e-9 USD) per USD; spend is counted in whole nano-dollars. */
export const NANOS_PER_USD = 1e9;

/** USD → whole nano-dollars (rounded to the nearest). */
export function toNanos(usd: number): number {
  return Math.round(usd * NANOS_PER_USD);
}

/** Whole nano-dollars → USD. */
export function toUsd(nanos: number): number {
  return nanos / NANOS_PER_USD;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Length of a rolling window, ms; a rolling month is 30 days. */
export const ROLLING_WINDOW_MS: Readonly<Record<BudgetWindow, number>> = Object.freeze({
  minute: MINUTE_MS,
  hour: HOUR_MS,
  day: DAY_MS,
  month: 30 * DAY_MS,
});

/**
 * Buckets per rolling window: a minute is kept in 1 s buckets, an hour in
 * 1 min buckets, a day in 24 min buckets, 30 days in 12 h buckets.
 */
export const ROLLING_BUCKETS = 60;

/** The spend of one budget's window, counted in nano-dollars. */
export interface SpendWindow {
  /** The window's length. */
  readonly window: BudgetWindow;
  /** Calendar or rolling. */
  readonly mode: BudgetMode;
  /** Spend in the window at `now`. */
  spent(now: number): number;
  /** Adds spend at `now`. */
  add(now: number, nanos: number): void;
  /**
   * A retry hint: ms from `now` until the window has freed at least `nanos`
   * of its current spend, assuming none is added (0 for `nanos` ≤ 0). A
   * calendar window frees everything at its end. When `nanos` is more than
   * the window holds, the time until all of it has left — for a rolling window
   * at least one bucket.
   */
  freesInMs(now: number, nanos: number): number;
  /** Ms from `now` until all current spend has left the window; 0 when there is none (rolling) — a calendar window's end. */
  clearsInMs(now: number): number;
  /**
   * Set by the window when a calendar window reset, or when spend left a
   * rolling window (buckets expired), since the flag was last cleared; budgets use it to re-arm their
   * once-per-crossing event.
   */
  freed: boolean;
  /** The window's state as plain JSON data, as of the last `now` it was given (call {@link SpendWindow.spent} first). */
  toJSON(): WindowState;
  /** Replaces the window's spend with a saved state (already checked by {@link windowStateProblem}). */
  restore(state: WindowState, now: number): void;
}

/** Saved state of a calendar window: its start (epoch ms) and its spend in nano-dollars. */
export interface CalendarState {
  mode: 'calendar';
  window: BudgetWindow;
  start: number;
  spentNanos: number;
}

/** Saved state of a rolling window: the index of its newest bucket and the buckets' spend, oldest first, in nano-dollars. */
export interface RollingState {
  mode: 'rolling';
  window: BudgetWindow;
  bucketMs: number;
  head: number;
  buckets: number[];
}

/** Saved state of either kind of window. */
export type WindowState = CalendarState | RollingState;

/** A new, empty window. */
export function createWindow(window: BudgetWindow, mode: BudgetMode): SpendWindow {
  return mode === 'rolling' ? new RollingWindow(window) : new CalendarWindow(window);
}

/** Start and end (epoch ms, end exclusive) of the UTC calendar window holding `now`. */
export function calendarBounds(window: BudgetWindow, now: number): [start: number, end: number] {
  if (window === 'month') {
    const date = new Date(now);
    const year = date.getUTCFullYear();
    const month = date.getUTCMonth();
    // Date.UTC carries month 12 into January of the next year.
    return [Date.UTC(year, month, 1), Date.UTC(year, month + 1, 1)];
  }
  // Epoch time has no leap seconds: UTC minutes, hours and days are whole multiples.
  const length = window === 'minute' ? MINUTE_MS : window === 'hour' ? HOUR_MS : DAY_MS;
  const start = Math.floor(now / length) * length;
  return [start, start + length];
}

/**
 * Resets at UTC boundaries. The current bounds are cached, so a lookup costs
 * a comparison until the window ends. A clock that steps back into an earlier
 * window keeps the current one (spend is never forgotten by going back).
 */
class CalendarWindow implements SpendWindow {
  readonly mode = 'calendar' as const;
  freed = false;
  #start = Number.NEGATIVE_INFINITY;
  #end = Number.NEGATIVE_INFINITY;
  #spent = 0;

  constructor(readonly window: BudgetWindow) {}

  #advance(now: number): void {
    if (now < this.#end) return;
    [this.#start, this.#end] = calendarBounds(this.window, now);
    this.freed = true;
    this.#spent = 0;
  }

  spent(now: number): number {
    this.#advance(now);
    return this.#spent;
  }

  add(now: number, nanos: number): void {
    this.#advance(now);
    this.#spent += nanos;
  }

  freesInMs(now: number, nanos: number): number {
    this.#advance(now);
    return nanos <= 0 ? 0 : this.#end - now;
  }

  clearsInMs(now: number): number {
    this.#advance(now);
    return this.#end - now;
  }

  toJSON(): CalendarState {
    return { mode: 'calendar', window: this.window, start: this.#start, spentNanos: this.#spent };
  }

  restore(state: WindowState, now: number): void {
    if (state.mode !== 'calendar') return;
    const [start, end] = calendarBounds(this.window, state.start);
    this.#start = start;
    this.#end = end;
    this.#spent = state.spentNanos;
    this.#advance(now);
  }
}

/**
 * The last minute / hour / day / 30 days, in {@link ROLLING_BUCKETS} buckets.
 * Spend recorded at time t goes to bucket ⌊t / bucketMs⌋ and counts until that
 * bucket is {@link ROLLING_BUCKETS} buckets old: for between
 * (windowMs − bucketMs) and windowMs after it was recorded. Expired buckets are
 * cleared lazily; each is cleared once, so a lookup costs O(1) amortised and
 * O({@link ROLLING_BUCKETS}) at worst. A clock that steps back counts new spend
 * in the newest bucket.
 */
class RollingWindow implements SpendWindow {
  readonly mode = 'rolling' as const;
  readonly bucketMs: number;
  freed = false;
  /** Spend by bucket, slot = bucket index mod ROLLING_BUCKETS. */
  readonly #buckets = new Float64Array(ROLLING_BUCKETS);
  /** Index of the newest bucket (⌊t / bucketMs⌋). */
  #head = Number.NEGATIVE_INFINITY;
  #total = 0;

  constructor(readonly window: BudgetWindow) {
    this.bucketMs = ROLLING_WINDOW_MS[window] / ROLLING_BUCKETS;
  }

  #advance(now: number): void {
    const current = Math.floor(now / this.bucketMs);
    if (current <= this.#head) return;
    if (this.#total !== 0) {
      if (current - this.#head >= ROLLING_BUCKETS) {
        this.#buckets.fill(0);
        this.#total = 0;
        this.freed = true;
      } else {
        for (let index = this.#head + 1; index <= current; index++) {
          const slot = slotOf(index);
          const amount = this.#buckets[slot]!;
          if (amount !== 0) {
            this.#total -= amount;
            this.#buckets[slot] = 0;
            this.freed = true;
          }
        }
      }
    }
    this.#head = current;
  }

  spent(now: number): number {
    this.#advance(now);
    return this.#total;
  }

  add(now: number, nanos: number): void {
    this.#advance(now);
    const slot = slotOf(this.#head);
    this.#buckets[slot] = this.#buckets[slot]! + nanos;
    this.#total += nanos;
  }

  freesInMs(now: number, nanos: number): number {
    this.#advance(now);
    if (nanos <= 0) return 0;
    if (this.#total === 0) return this.bucketMs;
    return this.#expiresInMs(now, Math.min(nanos, this.#total));
  }

  clearsInMs(now: number): number {
    this.#advance(now);
    return this.#total === 0 ? 0 : this.#expiresInMs(now, this.#total);
  }

  /** Ms until the oldest buckets holding at least `nanos` (≤ the total) have expired. */
  #expiresInMs(now: number, nanos: number): number {
    let freed = 0;
    let index = this.#head - ROLLING_BUCKETS + 1;
    for (; index < this.#head; index++) {
      freed += this.#buckets[slotOf(index)]!;
      if (freed >= nanos) break;
    }
    return Math.max(0, (index + ROLLING_BUCKETS) * this.bucketMs - now);
  }

  toJSON(): RollingState {
    const buckets: number[] = [];
    const head = this.#head;
    for (let index = head - ROLLING_BUCKETS + 1; index <= head; index++) buckets.push(this.#buckets[slotOf(index)]!);
    return { mode: 'rolling', window: this.window, bucketMs: this.bucketMs, head, buckets };
  }

  restore(state: WindowState, now: number): void {
    if (state.mode !== 'rolling') return;
    // A snapshot from a clock ahead of ours is taken as of our newest bucket.
    const current = Math.floor(now / this.bucketMs);
    const head = Math.min(state.head, current);
    this.#buckets.fill(0);
    this.#total = 0;
    state.buckets.forEach((amount, offset) => {
      if (amount === 0) return;
      this.#buckets[slotOf(head - ROLLING_BUCKETS + 1 + offset)] = amount;
      this.#total += amount;
    });
    this.#head = head;
    this.#advance(now);
  }
}

/** The ring slot of a bucket index (also for indexes below 0). */
function slotOf(index: number): number {
  return ((index % ROLLING_BUCKETS) + ROLLING_BUCKETS) % ROLLING_BUCKETS;
}

/**
 * Why a saved window state cannot be restored into a `window`/`mode` budget,
 * or undefined when it can. `field` is relative to the state object.
 */
export function windowStateProblem(
  raw: unknown,
  window: BudgetWindow,
  mode: BudgetMode,
): { field: string; problem: string } | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { field: '', problem: 'expected an object' };
  const state = raw as Record<string, unknown>;
  if (state.mode !== mode) return { field: 'mode', problem: `expected '${mode}' (the budget's mode)` };
  if (state.window !== window) return { field: 'window', problem: `expected '${window}' (the budget's window)` };
  const isAmount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (mode === 'calendar') {
    if (typeof state.start !== 'number' || !Number.isFinite(state.start)) {
      return { field: 'start', problem: 'expected the window start in epoch ms' };
    }
    if (!isAmount(state.spentNanos)) return { field: 'spentNanos', problem: 'expected a whole number of nano-dollars ≥ 0' };
    return undefined;
  }
  const bucketMs = ROLLING_WINDOW_MS[window] / ROLLING_BUCKETS;
  if (state.bucketMs !== bucketMs) return { field: 'bucketMs', problem: `expected ${bucketMs}` };
  if (typeof state.head !== 'number' || !Number.isSafeInteger(state.head)) return { field: 'head', problem: 'expected a bucket index' };
  if (!Array.isArray(state.buckets) || state.buckets.length !== ROLLING_BUCKETS) {
    return { field: 'buckets', problem: `expected an array of ${ROLLING_BUCKETS} amounts` };
  }
  const bad = state.buckets.findIndex((amount) => !isAmount(amount));
  if (bad !== -1) return { field: `buckets[${bad}]`, problem: 'expected a whole number of nano-dollars ≥ 0' };
  return undefined;
}
