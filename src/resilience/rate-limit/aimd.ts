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
 * - Each success adds `max(1, 2% of the estimate) ÷ estimate` rpm, so a key
 *   used at its estimated rate grows by 1 rpm (or 2%, whichever is more) per
 *   minute: slowly enough that the next 429 is minutes away, not seconds
 *   (adding 1 rpm per success overshot a limit by ~40% within a minute).
 *   Within one minute it can still at most double (a period starts at a
 *   decrease, or with the first success 60 s or more after the last one began).
 * - Another 429 multiplies it by 0.75 (never below 1) — unless it arrives while the key is
 *   still resting from the previous decrease (before `quietUntil`): such a 429
 *   answers a request sent before the decrease, and halving again for it would
 *   punish one overload several times.
 *
 * Values are not rounded: an estimate may be fractional (e.g. 4.5 rpm).
 */
export class AimdEstimator {
  #estimate: number | undefined;
  #base: number | undefined;
  #baseAt: number | undefined;
  #quietUntil = 0;
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
   * the key served successfully in the last minute.
   * @returns Whether the estimate changed.
   */
  onRateLimited(now: number, restUntil: number, explicitMs?: number): boolean {
    if (explicitMs !== undefined && explicitMs <= BLIP_RETRY_MS) return false;
    if (this.#estimate !== undefined && now < this.#quietUntil) {
      this.#quietUntil = Math.max(this.#quietUntil, restUntil);
      return false;
    }
    const from = this.#estimate ?? this.sentLastMinute(now);
    this.#estimate = Math.max(1, from * DECREASE, this.servedLastMinute(now));
    this.#base = this.#estimate;
    this.#baseAt = now;
    this.#quietUntil = Math.max(restUntil, now);
    return true;
  }

  /**
   * A success at `now`: the additive increase (about 1 rpm, or 2%, per minute
   * of full use), capped at doubling per minute. Nothing happens while the
   * estimate is unknown.
   * @returns Whether the estimate changed.
   */
  onSuccess(now: number): boolean {
    if (this.#estimate === undefined) return false;
    if (this.#base === undefined || this.#baseAt === undefined || now - this.#baseAt >= MINUTE_MS) {
      this.#base = this.#estimate;
      this.#baseAt = now;
    }
    const step = Math.max(1, this.#estimate * GROWTH_PER_MINUTE) / this.#estimate;
    const next = Math.min(this.#estimate + step, this.#base * 2);
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
