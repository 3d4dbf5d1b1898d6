/**
 * One rate-limit window of one key: a capacity per period, kept as a ledger
 * of what was sent, so that it holds against every upstream shape (token
 * bucket, sliding window, fixed window) and under bursts.
 */

import type { WindowSpec } from './options';

export type { WindowSpec };

/**
 * The longest an upstream is assumed to take to count a request after it was
 * sent (its arrival). A debt not answered by then is counted as of then.
 */
export const MAX_COUNT_LAG_MS = 250;
/** Settled units are kept in this many slots per period (bounded memory; up to 1/SLOTS of a period of margin). */
const SLOTS = 256;
/** Debts kept one by one at most; beyond, the oldest is settled as of its latest count time (bounded memory). */
const MAX_DEBTS = 1_024;
/** Below this, a level and a need are taken as equal (float noise). */
const EPSILON = 1e-6;
const NO_LOG: readonly number[] = [];

/** Removes `count` numbers at `at` in place (no array of the removed ones, as `splice` makes: this runs on every reply). */
function removeAt(list: number[], at: number, count: number): void {
  const end = list.length - count;
  for (let i = at; i < end; i++) list[i] = list[i + count]!;
  list.length = end;
}

/** A debt's fields in the debts list: `[id, amount, at, id, amount, at, ...]`. */
const ID = 0;
const AMOUNT = 1;
const AT = 2;
const DEBT = 3;


/**
 * A sliding-window ledger: at most `limit` units in any `periodMs`.
 *
 * - A take at `at` is a **debt** until its reply: it holds its units until
 *   `min(reply, at + MAX_COUNT_LAG_MS) + periodMs` — the upstream counted it
 *   by its reply at the latest, and its window frees it a period later. A
 *   take sent later than it was made counts from its send ({@link sent}).
 * - A **cap** (a header snapshot) says: when the upstream counted take *n*,
 *   `remaining` units were left; so until the snapshot's reset, what is
 *   available is `remaining` minus what was taken after *n* — never
 *   "remaining as of now" (in-flight requests sent after *n* are not in it).
 * - A **block** (a 429's rest) closes the window until a moment.
 *
 * A sliding window that admits at most `limit` in any period is accepted by a
 * token bucket of the same capacity and period, by a sliding window and by a
 * fixed window alike: bursts never over-send, whatever the upstream.
 */
export class LedgerWindow {
  /** The capacity and period, as fields (no spec object per window). */
  #limit: number;
  #periodMs: number;
  /**
   * Unanswered takes as `[id, amount, at, ...]` triples, in send order (a flat
   * list: no object nor map entry per request); made at the first take.
   */
  #debts: number[] | undefined;
  /**
   * Units the upstream counted by a moment, as `[countedAt, amount, ...]`
   * pairs in order: they leave the window a period later (whatever the
   * period is by then). Made at the first settled take.
   */
  #log: number[] | undefined;
  #debtSum = 0;
  #logSum = 0;
  /** Units taken ever (the ledger's sequence, for caps). */
  #taken = 0;
  /**
   * A header snapshot's cap (fields, not an object: none made per reply): `ceiling` in the ledger's
   * sequence as of `at`, refilling at `rate` per ms, until `until` (undefined: no cap).
   */
  #capUntil: number | undefined;
  // Declared without a number, so that V8 keeps whole values inline (a number-initialised field boxes every value, in every window).
  #capCeiling: number | undefined;
  #capAt: number | undefined;
  #capRate: number | undefined;
  /** Until when a block closes the window; undefined when none (no boxed number per window that never saw one). */
  #blockedUntil: number | undefined;
  /**
   * Set while the upstream is known to be a token bucket, which then paces
   * instead of the sliding ledger: its level (units available, within
   * `[-limit, limit]`) as of `#updatedAt`, refilling at `limit / periodMs`
   * per ms. Kept here, not in an object of its own (one per learnt window).
   */
  #level: number | undefined;
  #updatedAt: number | undefined;

  constructor(spec: WindowSpec) {
    this.#limit = spec.limit;
    this.#periodMs = spec.periodMs;
  }

  /** The capacity and period (a new object each call). */
  get spec(): WindowSpec {
    return { limit: this.#limit, periodMs: this.#periodMs };
  }

  /** The capacity per period. */
  get limit(): number {
    return this.#limit;
  }

  /** The period in ms. */
  get periodMs(): number {
    return this.#periodMs;
  }

  /** Whether the window has a finite capacity (an unlimited placeholder records nothing). */
  get limited(): boolean {
    return Number.isFinite(this.#limit);
  }

  /** Changes the capacity or period (learnt again); the ledger is kept. */
  set spec(spec: WindowSpec) {
    this.#limit = spec.limit;
    this.#periodMs = spec.periodMs;
    // No refill here: the bucket's level stays as of its last update, within the new capacity.
    if (this.#level !== undefined && Number.isFinite(spec.limit)) this.#level = Math.max(-spec.limit, Math.min(spec.limit, this.#level));
    else this.#level = undefined;
  }

  /**
   * Paces as a token bucket of the same capacity and period (`true`: the
   * upstream was seen to be one, so its refill can be used at once) or as the
   * sliding ledger (`false`, the default: safe against every upstream). A
   * bucket starts at what the ledger holds.
   */
  useBucket(on: boolean, now: number): void {
    if (!on || !Number.isFinite(this.#limit)) {
      this.#level = undefined;
      return;
    }
    if (this.#level !== undefined) return;
    this.#level = this.#limit;
    this.#updatedAt = now;
    this.#bucketTake(this.#used(now), now);
  }

  /** The bucket's level at `now` (refilled since its last update; a clock behind it changes nothing). */
  #bucketLevel(now: number): number {
    let level = this.#level!;
    const updatedAt = this.#updatedAt!;
    if (now > updatedAt) {
      level = Math.min(this.#limit, level + (now - updatedAt) * (this.#limit / this.#periodMs));
      this.#level = level;
      this.#updatedAt = now;
    }
    return level;
  }

  /** Takes `amount` units from the bucket (negative gives back), its level kept within `[-limit, limit]`; nothing without a bucket. */
  #bucketTake(amount: number, now: number): void {
    if (this.#level === undefined) return;
    this.#level = Math.max(-this.#limit, Math.min(this.#limit, this.#bucketLevel(now) - amount));
  }

  /** Whole ms until the bucket holds `amount` units (at most its capacity). */
  #bucketWaitMs(amount: number, now: number): number {
    const level = this.#bucketLevel(now);
    if (level + EPSILON >= amount) return 0;
    const rate = this.#limit / this.#periodMs;
    const start = this.#updatedAt! > now ? this.#updatedAt! - now : 0;
    // Rounded up, minus a hair worth less than EPSILON units, so the ms it names is the first that fits.
    return Math.ceil(start + (amount - level) / rate - EPSILON / (2 * rate));
  }

  /** Units taken ever: a reservation records it to place header snapshots in the ledger. */
  get taken(): number {
    return this.#taken;
  }

  /** The moment until which a block keeps the window closed; `-Infinity` when none. */
  get blockedUntil(): number {
    return this.#blockedUntil ?? -Infinity;
  }

  /** When the debt at `i` of the list leaves the window: unanswered, or answered at `replyAt` (if that is sooner). */
  #expiryAt(debts: readonly number[], i: number, replyAt = Infinity): number {
    return Math.min(replyAt, debts[i + AT]! + MAX_COUNT_LAG_MS) + this.#periodMs;
  }

  /** Where debt `id` is in the list; -1 when it is not (answered, given back, or never taken). */
  #find(id: number): number {
    const debts = this.#debts;
    if (debts === undefined) return -1;
    for (let i = 0; i < debts.length; i += DEBT) if (debts[i + ID] === id) return i;
    return -1;
  }

  /** Drops what has left the window at `now`; returns the units still in it. O(what left). */
  #used(now: number): number {
    // Debts are in send order, so their expiries are too: drop from the front.
    const debts = this.#debts;
    if (debts !== undefined) {
      let drop = 0;
      while (drop < debts.length && this.#expiryAt(debts, drop) <= now) {
        this.#debtSum -= debts[drop + AMOUNT]!;
        drop += DEBT;
      }
      if (drop === debts.length) {
        this.#debtSum = 0;
        this.#debts = undefined; // an idle key holds no list
      } else if (drop > 0) removeAt(debts, 0, drop);
    }
    const log = this.#log;
    if (log !== undefined) {
      let drop = 0;
      while (drop < log.length && log[drop]! + this.#periodMs <= now) {
        this.#logSum -= log[drop + 1]!;
        drop += 2;
      }
      if (drop > 0) removeAt(log, 0, drop);
      if (log.length === 0) {
        this.#logSum = 0;
        this.#log = undefined;
      }
    }
    if (this.#capUntil !== undefined && this.#capUntil <= now) this.#capUntil = undefined;
    return this.#debtSum + this.#logSum;
  }

  /** Units available at `now` (possibly negative, after a charge above the estimate). */
  available(now: number): number {
    let free: number;
    if (this.#level !== undefined) {
      // A bucket's level is all it has: the ledger is trimmed by the next take or cap (this runs on every pick).
      if (this.#capUntil !== undefined && this.#capUntil <= now) this.#capUntil = undefined;
      free = this.#bucketLevel(now);
    } else free = this.#limit - this.#used(now);
    return this.#capUntil !== undefined ? Math.min(free, this.#capRoom(now)) : free;
  }

  /** Share of the capacity available, 0..1; 0 while blocked. */
  share(now: number): number {
    if (this.#blockedUntil !== undefined && now < this.#blockedUntil) return 0;
    return Math.min(1, Math.max(0, this.available(now) / this.#limit));
  }

  /**
   * Whole ms until `amount` units fit: 0 when they do now (always for 0
   * units), `Infinity` when `amount` exceeds the limit. With `replyAt` (not
   * before `now`): as if every debt were answered then.
   */
  waitMs(amount: number, now: number, replyAt?: number): number {
    if (amount <= 0) return 0;
    const blocked = this.#blockedUntil !== undefined && this.#blockedUntil > now ? Math.ceil(this.#blockedUntil - now) : 0;
    if (amount > this.#limit + EPSILON) return Infinity;
    const used = this.#used(now);
    let wait = 0;
    const until = this.#capUntil;
    if (until !== undefined && this.#capRoom(now) + EPSILON < amount) {
      const rate = this.#capRate!;
      wait = rate > 0 ? Math.min(until - now, (amount - this.#capRoom(now)) / rate) : until - now;
    }
    if (this.#level !== undefined) return Math.max(blocked, Math.ceil(wait - EPSILON), this.#bucketWaitMs(amount, now));
    const excess = used + amount - this.#limit;
    if (excess > EPSILON) wait = Math.max(wait, this.#freedAfter(excess, replyAt) - now);
    return Math.max(blocked, Math.ceil(wait - EPSILON));
  }

  /**
   * After a wait for `amount` units that ends past `by` (a deadline): the
   * last moment at which replies to the debts would still make room by then
   * (an answered debt leaves a period after its reply, sooner than after the
   * latest count time {@link waitMs} takes for it). `Infinity` when the
   * units fit by `by` anyway; `-Infinity` when no reply would help: what was
   * counted, a cap, a block or a bucket's level stands in the way, or a
   * reply now would free the units only after `by`.
   */
  hopeUntil(amount: number, now: number, by: number): number {
    if (this.waitMs(amount, now) <= by - now) return Infinity;
    const replyBy = by - this.#periodMs;
    if (replyBy < now || this.#level !== undefined) return -Infinity;
    return this.waitMs(amount, now, replyBy) <= by - now ? replyBy : -Infinity;
  }

  /** The moment at which `excess` units will have left the window (debts answered at `replyAt`, if given): both lists are in expiry order, merged. */
  #freedAfter(excess: number, replyAt?: number): number {
    const debts = this.#debts ?? NO_LOG;
    const log = this.#log ?? NO_LOG;
    let d = 0;
    let i = 0;
    let freed = 0;
    for (;;) {
      const more = i < log.length;
      const debtsDone = d >= debts.length;
      const debtExpiry = debtsDone ? Infinity : this.#expiryAt(debts, d, replyAt);
      if (!more && debtsDone) return Infinity;
      const entryExpiry = more ? log[i]! + this.#periodMs : Infinity;
      if (more && entryExpiry <= debtExpiry) {
        freed += log[i + 1]!;
        i += 2;
        if (freed + EPSILON >= excess) return entryExpiry;
      } else {
        freed += debts[d + AMOUNT]!;
        d += DEBT;
        if (freed + EPSILON >= excess) return debtExpiry;
      }
    }
  }

  /**
   * Counts `amount` units in the ledger's sequence only (no debt, no
   * capacity used): an unlimited placeholder does this, so that a header
   * snapshot answering a request sent before the limit was known still
   * subtracts what was sent after that request.
   */
  count(amount: number): void {
    this.#taken += amount;
  }

  /** Takes `amount` units at `now` as debt `id` (until {@link answer}). */
  take(id: number, amount: number, now: number): void {
    const debts = this.#debts;
    if (debts === undefined) this.#debts = [id, amount, now];
    else debts.push(id, amount, now);
    this.#debtSum += amount;
    this.#taken += amount;
    this.#bucketTake(amount, now);
    if (debts !== undefined && debts.length > MAX_DEBTS * DEBT) {
      const [, oldest, at] = debts.splice(0, DEBT) as [number, number, number];
      this.#debtSum -= oldest;
      // The same moment it would leave the window unanswered; only an earlier reply can no longer shorten it.
      this.#settle(at + MAX_COUNT_LAG_MS, oldest);
    }
  }

  /** Debt `id` was answered at `now`: it leaves the window a period after. */
  answer(id: number, now: number): void {
    const i = this.#find(id);
    if (i === -1) return;
    const amount = this.#debts![i + AMOUNT]!;
    const at = this.#debts![i + AT]!;
    this.#forgetDebt(i);
    this.#settle(Math.min(now, at + MAX_COUNT_LAG_MS), amount);
  }

  /**
   * Changes debt `id` by `delta` units (a token estimate replaced by the real
   * count: positive charges, negative gives back). A debt already answered
   * or gone is charged as of `at + period`.
   */
  adjust(id: number, at: number, delta: number, now: number = at): void {
    this.#taken += delta;
    this.#bucketTake(delta, now);
    const i = this.#find(id);
    if (i !== -1) {
      this.#debts![i + AMOUNT]! += delta;
      this.#debtSum += delta;
    } else this.#settle(at + MAX_COUNT_LAG_MS + this.#periodMs, delta);
  }

  /**
   * Debt `id` was sent at `at`, later than it was taken: it counts from then
   * (the upstream counts it by `at + MAX_COUNT_LAG_MS`), so it moves to the
   * end of the debts (send order, so expiry order, holds: `at` is the latest).
   */
  sent(id: number, at: number): void {
    const i = this.#find(id);
    const debts = this.#debts!;
    if (i === -1 || at <= debts[i + AT]!) return;
    const amount = debts[i + AMOUNT]!;
    debts.splice(i, DEBT);
    debts.push(id, amount, at);
  }

  /** Gives debt `id` back whole (never sent, or never counted). */
  cancel(id: number, now: number): void {
    const i = this.#find(id);
    if (i === -1) return;
    const amount = this.#debts![i + AMOUNT]!;
    this.#bucketTake(-amount, now);
    this.#forgetDebt(i);
    this.#taken -= amount;
  }

  /** Drops the debt at `i` of the list; the list goes with the last one (an idle key holds none). */
  #forgetDebt(i: number): void {
    const debts = this.#debts!;
    this.#debtSum -= debts[i + AMOUNT]!;
    if (debts.length === DEBT) {
      this.#debtSum = 0;
      this.#debts = undefined;
    } else removeAt(debts, i, DEBT);
  }

  #settle(countedAt: number, amount: number): void {
    this.#logSum += amount;
    const slot = this.#periodMs / SLOTS;
    const log = this.#log;
    if (log === undefined) {
      this.#log = [countedAt, amount]; // exactly sized: most keys' logs hold a few entries
      return;
    }
    const last = log.length - 2;
    if (last >= 0 && countedAt <= log[last]!) {
      // Out of order (a slow reply): kept with the latest entry, a little longer than needed.
      log[last + 1] = log[last + 1]! + amount;
      return;
    }
    if (last >= 0 && countedAt - log[last]! < slot) {
      log[last] = countedAt;
      log[last + 1] = log[last + 1]! + amount;
      return;
    }
    // A short log is copied at its exact length (a push leaves room for 16 more numbers, per window); a long one grows.
    if (log.length < 32) this.#log = log.concat(countedAt, amount);
    else log.push(countedAt, amount);
  }

  /** What the cap in force leaves at `now` (it refills in bucket mode, as the upstream's bucket does). */
  #capRoom(now: number): number {
    return this.#capCeiling! + this.#capRate! * Math.max(0, now - this.#capAt!) - this.#taken;
  }

  /**
   * A header snapshot: when the upstream counted the take that brought
   * {@link taken} to `takenThrough`, `remaining` units were left, until
   * `until`. What was taken since is subtracted; in bucket mode what the
   * upstream refilled since is added (unless `refills` is false: a shared
   * store's level, which frees nothing before `until`). The tighter of this
   * and a cap in force is kept.
   */
  cap(remaining: number, takenThrough: number, until: number, now: number, refills = this.#level !== undefined): void {
    this.#used(now);
    const rate = refills && this.#level !== undefined ? this.#limit / this.#periodMs : 0;
    const current = this.#capUntil !== undefined && this.#capUntil > now ? this.#capRoom(now) : Infinity;
    this.#capCeiling = remaining + takenThrough;
    this.#capAt = now;
    this.#capRate = rate;
    this.#capUntil = until;
    if (current < this.#capRoom(now)) {
      this.#capCeiling = current + this.#taken;
      this.#capUntil = Math.max(until, now);
    }
  }

  /**
   * A shared store's level (units left in the shared window, now) caps the
   * window, never raising it, until the store's oldest units leave
   * (`freeMs`: nothing frees in the shared window before), or, from a store
   * that does not say, until the level could have refilled at limit per
   * period.
   */
  mirror(level: number, freeMs: number | undefined, now: number): void {
    const untilMs = freeMs ?? (Math.max(0, this.#limit - level) * this.#periodMs) / this.#limit;
    this.cap(level, this.#taken, now + untilMs, now, freeMs === undefined ? undefined : false);
  }

  /** Closes the window until `now + ms` (a longer block in force is kept). */
  block(ms: number, now: number): void {
    this.#blockedUntil = Math.max(this.#blockedUntil ?? -Infinity, now + Math.max(0, ms));
  }

  /** Forgets blocks and caps (the ledger of what was sent stays: it happened). */
  clearHints(): void {
    this.#blockedUntil = undefined;
    this.#capUntil = undefined;
  }
}
