/**
 * Learning a window's period from the reset headers: providers do not all
 * count per minute (Groq's requests are per day, gateways reset every few
 * seconds), and most headers never say the period outright (Cerebras's
 * names, Mistral's and an IETF `RateLimit-Policy` do: that period is taken).
 */
import { RATE_LIMIT_CAPS } from '../headers';

/** The period assumed until the headers tell otherwise. */
export const DEFAULT_PERIOD_MS = 60_000;
/** The shortest period learnt from headers. */
export const MIN_LEARNT_PERIOD_MS = 1_000;

/**
 * Learns one dimension's period from successive `{ limit, remaining, reset }`
 * snapshots:
 *
 * - **Token bucket** (OpenAI, Azure, Groq, Anthropic): the reset is the time
 *   to refill what was used, so `period = reset × limit / used` (with
 *   `used − 1` from 2 used on: `remaining` is rounded down, and the period
 *   must not come out short). Each snapshot bounds the period from above;
 *   the tightest bound is kept.
 * - **Fixed window** (some gateways): the reset moment stays put while more
 *   is used, which a bucket never does (each unit would push it a
 *   `period / limit` later). Once seen, the period is the longest reset seen.
 *
 * - **Stated** (Cerebras's `…-requests-day`, Mistral's `…-minute`, an IETF
 *   policy's `w`): the period is the one stated, paced as a sliding window
 *   (the safe shape: the names say how long, not how the upstream refills).
 *
 * Periods are kept within [1 s, 1 day]; {@link DEFAULT_PERIOD_MS} until a
 * snapshot says more.
 */
export class PeriodLearner {
  // Numbers start undefined (their defaults are read with `??`): V8 then keeps whole values inline instead
  // of boxing every value of a number-initialised field, in every learner (one per key and dimension).
  /** The period learnt so far; undefined: {@link DEFAULT_PERIOD_MS}. */
  #periodMs: number | undefined;
  #fixed = false;
  /** The tightest upper bound of the period seen (snapshots with 2 used or more); undefined: none yet. */
  #bound: number | undefined;
  #limit: number | undefined;
  /** The last snapshot (fields, not an object: no allocation per reply); `#lastUsed` is undefined when none. */
  #lastUsed: number | undefined;
  #lastResetAt: number | undefined;
  #lastResetMs: number | undefined;

  /** The period learnt so far (ms). */
  get periodMs(): number {
    return this.#periodMs ?? DEFAULT_PERIOD_MS;
  }

  /** Whether the window was seen to reset all at once (a fixed window). */
  get fixed(): boolean {
    return this.#fixed;
  }

  /**
   * Whether to pace as a token bucket: yes (OpenAI, Azure, Groq and
   * Anthropic count that way, and a bucket uses their refill at once) unless
   * the window was seen to reset all at once (a fixed or sliding window),
   * where the limiter keeps its sliding ledger. A bucket learnt from a
   * fixed-window upstream before that is seen over-estimates the period
   * (`reset × limit / used` with few used), so it errs on the slow side.
   */
  get bucket(): boolean {
    return !this.#fixed;
  }

  /** One snapshot at `now` (`statedMs`: the period it states). Returns whether the period changed. */
  update(limit: number | undefined, remaining: number | undefined, resetMs: number | undefined, now: number, statedMs?: number): boolean {
    if (statedMs !== undefined) {
      const before = this.#periodMs;
      this.#fixed = true;
      this.#periodMs = Math.min(RATE_LIMIT_CAPS.maxResetMs, Math.max(MIN_LEARNT_PERIOD_MS, statedMs));
      return this.#periodMs !== before;
    }
    if (limit === undefined || remaining === undefined || resetMs === undefined) return false;
    if (limit !== this.#limit) {
      this.#limit = limit;
      this.#bound = undefined;
      this.#lastUsed = undefined;
    }
    const before = this.periodMs;
    let periodMs = before;
    const used = limit - remaining;
    const resetAt = now + resetMs;
    const lastUsed = this.#lastUsed;
    if (lastUsed !== undefined && used > lastUsed) {
      const lastResetMs = this.#lastResetMs ?? 0;
      // Resets in whole seconds (RFC 3339, Unix seconds, `3s`) are taken as rounded to the second.
      const coarse = resetMs % 1_000 === 0 && lastResetMs % 1_000 === 0;
      const tolerance = Math.max(coarse ? 1_000 : 20, 0.02 * resetMs);
      const bucketShift = ((used - lastUsed) * periodMs) / limit;
      const shift = resetAt - (this.#lastResetAt ?? 0);
      if (Math.abs(shift) <= tolerance && bucketShift >= 2 * tolerance) {
        if (!this.#fixed) periodMs = lastResetMs;
        this.#fixed = true;
      }
    }
    if (this.#fixed) {
      periodMs = Math.max(periodMs, resetMs);
    } else if (used >= 2 && resetMs > 0) {
      // `remaining` is whole units: the true use is above used − 1, so the period is at most
      // reset × limit / (used − 1) — the safe side. Each snapshot bounds it; the tightest bound is kept.
      const bound = Math.min(this.#bound ?? Infinity, (resetMs * limit) / (used - 1));
      this.#bound = bound;
      periodMs = bound;
    } else if (used === 1 && resetMs > 0 && this.#bound === undefined) {
      // With 1 used, the common first answer, reset × limit until a snapshot bounds it.
      periodMs = resetMs * limit;
    }
    this.#periodMs = Math.min(RATE_LIMIT_CAPS.maxResetMs, Math.max(MIN_LEARNT_PERIOD_MS, periodMs));
    this.#lastUsed = used;
    this.#lastResetAt = resetAt;
    this.#lastResetMs = resetMs;
    return this.#periodMs !== before;
  }

  /** Forgets everything learnt. */
  clear(): void {
    this.#periodMs = undefined;
    this.#fixed = false;
    this.#bound = undefined;
    this.#limit = undefined;
    this.#lastUsed = undefined;
  }
}
