/**
 * Adaptive rate estimation (AIMD) for a key whose limits nobody told us:
 * additive increase on success, multiplicative decrease on a 429.
 */
import { MINUTE_MS } from './options';

/** A 429 whose explicit wait is at most this is a blip (a burst, a brief overload), not a limit: no decrease. */
export const BLIP_RETRY_MS = 1_000;

const SLOT_MS = 1_000;
const SLOTS = 60;
/** Share of the rate kept on a 429 (the multiplicative decrease). */
const DECREASE = 0.75;
/** Growth per minute of full use, as a share of the estimate (at least 1 rpm). */
const GROWTH_PER_MINUTE = 0.02;

/**
 * An estimate of a key's requests per minute, learnt from 429s alone.
 *
 * - It starts unknown (`undefined`: no limiting).
 * - On the first 429 it becomes `max(1, sent × 0.75, served)`, where `sent`
 *   is the requests actually sent in the last 60 s and `served` those that
 *   succeeded (counted in whole seconds: the current second and the 59
 *   before it): it never falls below what the key has just served.
 * - A 429 with an explicit wait of at most 1 s (`retry-after-ms: 100`) is a
 *   blip: the key rests, the estimate does not change.
 * - Another 429 multiplies it by 0.75 (never below 1, nor below `served`) —
 *   unless it arrives while the key is still resting from the previous
 *   decrease (before `quietUntil`): such a 429 answers a request sent before
 *   the decrease, and decreasing again for it would punish one overload
 *   several times.
 * - The **proven rate** is what the key served in the last minute at the
 *   first decrease of a storm (the first 429 ever, or the first after a
 *   success; the decreases of a storm have no success between them): the
 *   decreased estimate is at least that, and the rest of the storm may drive
 *   it lower.
 * - Below the proven rate the estimate regrows fast: each success adds 1 rpm,
 *   so a key used at its estimated rate doubles it per minute, up to the
 *   proven rate (a storm that drove 30 rpm down to 3 is over in ~3 minutes,
 *   not ~28). A 429 while regrowing is the first decrease after a success: it
 *   proves what the key served then, at most the decreased estimate, so a
 *   limit that went down during the storm is overshot once, not again and
 *   again.
 * - At or above the proven rate (or with none), each success adds
 *   `max(1, 2% of the estimate) ÷ estimate` rpm, so a key used at its
 *   estimated rate grows by 1 rpm (or 2%, whichever is more) per minute:
 *   slowly enough that the next 429 is minutes away, not seconds (adding
 *   1 rpm per success there overshot a limit by ~40% within a minute).
 * - Within one minute it can at most double (a period starts at a decrease,
 *   or with the first success 60 s or more after the last one began).
 *
 * Values are not rounded: an estimate may be fractional (e.g. 4.5 rpm).
 */
export class AimdEstimator {
  #estimate: number | undefined;
  #base: number | undefined;
  #baseAt: number | undefined;
  #quietUntil = 0;
  /** The rate to regrow fast to ({@link onSuccess}); `undefined`: none proven. */
  #proven: number | undefined;
  /** Whether a success came after the last decrease (a 429 then ends a regrowth, not a storm). */
  #servedSinceDecrease = false;
  readonly #sent = new Tally();
  readonly #served = new Tally();

  /** The estimated rpm, `undefined` until the first 429. */
  get estimate(): number | undefined {
    return this.#estimate;
  }

  /** Counts one request sent at `now`. O(1). */
  recordSend(now: number): void {
    this.#sent.add(now);
  }

  /** Requests sent in the last 60 s at `now` (the current second and the 59 before it). */
  sentLastMinute(now: number): number {
    return this.#sent.total(now);
  }

  /** Counts one request served successfully at `now`. O(1). */
  recordSuccess(now: number): void {
    this.#served.add(now);
  }

  /** Requests served successfully in the last 60 s. */
  servedLastMinute(now: number): number {
    return this.#served.total(now);
  }

  /**
   * A 429 at `now`: the multiplicative decrease. `restUntil` is when the key
   * may be used again; 429s before then do not decrease again. A 429 whose
   * explicit wait (`explicitMs`) is at most {@link BLIP_RETRY_MS} is a blip:
   * the key rests, the estimate stays. The estimate never falls below what
   * the key served successfully in the last minute. The first decrease of a
   * storm (the first ever, or the first after a success) makes that the
   * proven rate.
   * @returns Whether the estimate changed.
   */
  onRateLimited(now: number, restUntil: number, explicitMs?: number): boolean {
    if (explicitMs !== undefined && explicitMs <= BLIP_RETRY_MS) return false;
    if (this.#estimate !== undefined && now < this.#quietUntil) {
      this.#quietUntil = Math.max(this.#quietUntil, restUntil);
      return false;
    }
    const served = this.servedLastMinute(now);
    // The first decrease of a storm (the first ever, or the first after a success) proves `served`.
    if (this.#servedSinceDecrease || this.#estimate === undefined) this.#proven = served;
    this.#servedSinceDecrease = false;
    this.#estimate = Math.max(1, (this.#estimate ?? this.sentLastMinute(now)) * DECREASE, served);
    this.#base = this.#estimate;
    this.#baseAt = now;
    this.#quietUntil = Math.max(restUntil, now);
    return true;
  }

  /**
   * A success at `now`: below the proven rate, 1 rpm (doubling per minute of
   * full use) up to it; at or above it, the additive increase (about 1 rpm,
   * or 2%, per minute of full use); either capped at doubling per minute.
   * Nothing happens while the estimate is unknown. O(1).
   * @returns Whether the estimate changed.
   */
  onSuccess(now: number): boolean {
    if (this.#estimate === undefined) return false;
    this.#servedSinceDecrease = true;
    if (this.#base === undefined || this.#baseAt === undefined || now - this.#baseAt >= MINUTE_MS) {
      this.#base = this.#estimate;
      this.#baseAt = now;
    }
    const proven = this.#proven ?? 0;
    const next =
      this.#estimate < proven
        ? Math.min(this.#estimate + 1, proven, this.#base * 2)
        : Math.min(this.#estimate + Math.max(1, this.#estimate * GROWTH_PER_MINUTE) / this.#estimate, this.#base * 2);
    if (next <= this.#estimate) return false;
    this.#estimate = next;
    return true;
  }

  /** Forgets the estimate and the tallies (`enableKey`: start afresh). */
  forget(): void {
    this.clear();
    this.#sent.clear();
    this.#served.clear();
  }

  /** Forgets the estimate (a real limit became known); the sends tally is kept. */
  clear(): void {
    this.#estimate = undefined;
    this.#base = undefined;
    this.#baseAt = undefined;
    this.#quietUntil = 0;
    this.#proven = undefined;
    this.#servedSinceDecrease = false;
  }
}

/**
 * Counts per second over the last 60 s, kept only for the seconds that had
 * any (memory grows with use, not with the number of keys): pairs of second
 * and count, in order of second. A clock that steps back files its count in
 * order; seconds 60 or more before the latest are dropped.
 */
class Tally {
  /** `[second, count, second, count, ...]`, seconds ascending; made at the first count. */
  #pairs: number[] | undefined;

  add(now: number): void {
    const second = Math.floor(now / SLOT_MS);
    const pairs = (this.#pairs ??= []);
    let i = pairs.length - 2;
    while (i >= 0 && pairs[i]! > second) i -= 2;
    if (i >= 0 && pairs[i] === second) pairs[i + 1] = pairs[i + 1]! + 1;
    else pairs.splice(i + 2, 0, second, 1);
    let drop = 0;
    const newest = pairs[pairs.length - 2]!;
    while (drop < pairs.length && pairs[drop]! <= newest - SLOTS) drop += 2;
    if (drop > 0) pairs.splice(0, drop);
  }

  total(now: number): number {
    const pairs = this.#pairs;
    if (pairs === undefined) return 0;
    const second = Math.floor(now / SLOT_MS);
    let total = 0;
    for (let i = 0; i < pairs.length; i += 2) {
      const at = pairs[i]!;
      if (at > second - SLOTS && at <= second) total += pairs[i + 1]!;
    }
    return total;
  }

  clear(): void {
    this.#pairs = undefined;
  }
}
