/**
 * The order a closed circuit judges outcomes in: the order their calls went
 * through, not the order they answer in — with a hold bounded by how long
 * the circuit's successes take, so a call that hangs does not hold the
 * verdicts of the calls behind it.
 */

/**
 * The ticket of an outcome with no place in the order (a half-open probe, or
 * a caller that keeps none): judged as it arrives.
 */
export const NO_TICKET = -1;
/** What `Circuit.pass` returns for a call that may not go. */
export const REFUSED = -2;
/**
 * The ticket of a call's outcome after its first (a stream that broke after
 * its first bytes): judged as it comes while closed; it holds no probe slot,
 * so it decides nothing while half-open.
 */
export const JUDGED = -3;
/** The ticket of the probes of a circuit's first half-open period; each later period's is one lower. */
const FIRST_PROBE = -4;

/** The ticket of a probe let through in the circuit's half-open period `period` (0 up). */
export function probeTicket(period: number): number {
  return FIRST_PROBE - period;
}

/** What a call reported: nothing yet, a success, a failure, or no verdict (a release). */
const PENDING = 0;
export const SUCCESS = 1;
export const FAILURE = 2;
export const NO_VERDICT = 3;
/** A reported outcome. */
export type Verdict = typeof SUCCESS | typeof FAILURE | typeof NO_VERDICT;

/**
 * The hold before the circuit has seen a success, in ms: a few seconds,
 * longer than most replies and time-to-first-tokens, short enough that a
 * provider that hangs some calls and fails the rest opens within seconds.
 */
export const FIRST_HOLD_MS = 5_000;
/** The shortest hold, in ms: a fast deployment's calls are not judged hung on an event-loop stall or a GC pause. */
export const MIN_HOLD_MS = 1_000;
/** The longest hold, in ms: however slow its successes, a hanging provider opens within two of these. */
export const MAX_HOLD_MS = 60_000;
/** The longest success time the averages take in, in ms (longer ones count as this): far past {@link MAX_HOLD_MS}. */
const MAX_SAMPLE_MS = 1 << 24;
/** The outcomes a circuit holds, while some came before earlier ones. */
interface Holding {
  /** Reported outcomes of tickets `#base` up, at `ticket & mask`; PENDING where none yet. */
  ring: Uint8Array;
  mask: number;
  /** Failures in the ring (held). */
  held: number;
  /** The timer's mark: tickets below it still in flight when it fires are let go. */
  mark: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}
/** What judges the outcomes in order: the circuit (a method, not a closure per circuit). */
export interface OrderJudge {
  /** Hands a verdict to the circuit's policy; false when the circuit left `closed` (it has called {@link PassOrder.reset}). */
  judgeInOrder(verdict: Verdict): boolean;
}
/** The most calls an outcome waits behind: an outcome further from the oldest call in flight lets that call go. Bounds the memory to 16 KB a circuit. */
const MAX_SPAN = 1 << 14;
/** The first ring's size (grown by doubling up to {@link MAX_SPAN}). */
const FIRST_SPAN = 16;

/**
 * Judges a closed circuit's outcomes in the order their calls went through.
 *
 * Each call takes a ticket when it passes ({@link take}); its outcome comes
 * back with it ({@link report}). An outcome is judged (handed to `judge`, the
 * circuit's policy) once every call that passed before it has reported, so a
 * burst whose failures answer at once and whose successes take longer is
 * judged as it was sent — a success between failures breaks their run —
 * rather than as failures in a row.
 *
 * A call in flight for longer than the hold ({@link holdMs}: the circuit's
 * success time, averaged, plus four times its spread, as TCP times out a
 * retransmission; {@link FIRST_HOLD_MS} before the first success; at least
 * {@link MIN_HOLD_MS}, at most {@link MAX_HOLD_MS}) holds no outcome: its own
 * is judged when it comes. While a failure is held, one timer runs for the
 * circuit: when it fires (a hold after it was armed), the calls that were in
 * flight when it was armed and still are let the outcomes behind them be
 * judged. So a failure is judged at most two holds after it came — a
 * provider that hangs some calls and fails the rest still opens — and a
 * failure that came after every earlier call reported is judged at once (a
 * provider failing every call opens as fast as ever). No timer runs while no
 * failure is held, and none per call.
 *
 * Memory: two counters, the averages, and a ring of one byte per call from
 * the oldest in flight to the newest reported (made at the first outcome that
 * comes before an earlier one; at most {@link MAX_SPAN} bytes).
 */
export class PassOrder {
  /** The next ticket. */
  #next = 0;
  /** The oldest ticket not judged; every ticket below is judged, or let go (judged as it comes). */
  #base = 0;
  /** What is held, made at the first outcome that comes before an earlier one (most circuits never need it). */
  #holding: Holding | undefined = undefined;
  /**
   * Smoothed time to a success's verdict, in eighths of a ms, and its mean
   * deviation, in quarters (RFC 6298's SRTT and RTTVAR, scaled as TCP keeps
   * them): whole numbers, so that V8 keeps them in the object, not as a
   * number boxed beside it per circuit; -1 before the first.
   */
  #srtt8 = -1;
  #rttvar4 = 0;
  #disposed = false;
  readonly #judge: OrderJudge;

  /** @param judge The circuit, which hands a verdict to its policy. */
  constructor(judge: OrderJudge) {
    this.#judge = judge;
  }

  /** A call passes: its ticket. */
  take(): number {
    return this.#next++;
  }

  /** Failures waiting for the outcomes of earlier calls. */
  get held(): number {
    return this.#holding?.held ?? 0;
  }

  /** How long a call in flight may hold the outcomes of later ones, in ms. */
  get holdMs(): number {
    if (this.#srtt8 < 0) return FIRST_HOLD_MS;
    return Math.min(MAX_HOLD_MS, Math.max(MIN_HOLD_MS, (this.#srtt8 >> 3) + this.#rttvar4));
  }

  /** A success came `ms` after its call was sent (RFC 6298's smoothing: gains 1/8 and 1/4). */
  observe(ms: number): void {
    if (!(ms >= 0)) return;
    // Whole ms, at most MAX_SAMPLE_MS (the scaled values stay small integers).
    const m = Math.min(Math.round(ms), MAX_SAMPLE_MS);
    if (this.#srtt8 < 0) {
      this.#srtt8 = m << 3;
      this.#rttvar4 = m << 1;
      return;
    }
    let error = m - (this.#srtt8 >> 3);
    this.#srtt8 += error;
    if (error < 0) error = -error;
    this.#rttvar4 += error - (this.#rttvar4 >> 2);
  }

  /** The outcome of the call holding `ticket`: judged now, or held until the calls before it report. */
  report(ticket: number, verdict: Verdict): void {
    const base = this.#base;
    if (ticket < base || this.#disposed) {
      // Let go (or before the last reset): judged as it comes.
      this.#judge.judgeInOrder(verdict);
      return;
    }
    if (ticket === base) {
      this.#base = base + 1;
      if (this.#judge.judgeInOrder(verdict)) this.#drain(0);
      return;
    }
    this.#hold(ticket, verdict);
  }

  /** Stores an outcome that came before an earlier call's (room made first). */
  #hold(ticket: number, verdict: Verdict): void {
    if (ticket - this.#base >= MAX_SPAN) {
      // Too far behind the oldest call in flight: the calls before the span are let go.
      if (!this.#drain(ticket - MAX_SPAN + 1)) return;
      if (ticket <= this.#base) {
        this.report(ticket, verdict);
        return;
      }
    }
    const holding = this.#room(ticket - this.#base + 1);
    holding.ring[ticket & holding.mask] = verdict;
    if (verdict !== FAILURE) return;
    holding.held++;
    if (holding.timer === undefined) this.#arm(holding);
  }

  /** What is held, its ring with room for `span` tickets from `#base`. */
  #room(span: number): Holding {
    const holding = this.#holding;
    const ring = holding?.ring;
    if (ring !== undefined && span <= ring.length) return holding!;
    let size = ring?.length ?? FIRST_SPAN;
    while (size < span) size *= 2;
    const grown = new Uint8Array(size);
    if (holding === undefined) return (this.#holding = { ring: grown, mask: size - 1, held: 0, mark: 0, timer: undefined });
    const end = this.#base + ring!.length;
    for (let t = this.#base; t < end; t++) grown[t & (size - 1)] = ring![t & holding.mask]!;
    holding.ring = grown;
    holding.mask = size - 1;
    return holding;
  }

  /**
   * Judges the held outcomes at the head of the order, letting go the calls
   * in flight below `letGoBelow`; false when the circuit left `closed`.
   */
  #drain(letGoBelow: number): boolean {
    const holding = this.#holding;
    if (holding === undefined) {
      // Nothing held: the calls below are let go.
      this.#base = Math.max(this.#base, Math.min(letGoBelow, this.#next));
      return true;
    }
    const { ring, mask } = holding;
    while (this.#base < this.#next) {
      const slot = this.#base & mask;
      const verdict = ring[slot]!;
      if (verdict === PENDING && this.#base >= letGoBelow) return true;
      ring[slot] = PENDING;
      this.#base++;
      if (verdict === PENDING) continue;
      if (verdict === FAILURE) holding.held--;
      if (!this.#judge.judgeInOrder(verdict as Verdict)) return false;
    }
    return true;
  }

  /** Starts the circuit's one hold timer, marking the calls in flight now. */
  #arm(holding: Holding): void {
    holding.mark = this.#next;
    const timer = setTimeout(() => {
      if (holding.timer !== timer) return;
      // Judged once the sockets were read: after a blocked loop Node runs the timers due before it reads
      // what came meanwhile, and a success already in would be let go as hung (setImmediate runs after that read).
      setImmediate(() => {
        if (holding.timer !== timer) return;
        holding.timer = undefined;
        // Every call below the mark has been in flight for a hold at least.
        if (this.#drain(holding.mark) && holding.held > 0) this.#arm(holding);
      });
    }, this.holdMs);
    timer.unref();
    holding.timer = timer;
  }

  #disarm(): void {
    const holding = this.#holding;
    if (holding?.timer === undefined) return;
    clearTimeout(holding.timer);
    holding.timer = undefined;
  }

  /** The circuit opened or closed: what is held is dropped, and the calls in flight are judged as they come. */
  reset(): void {
    this.#base = this.#next;
    const holding = this.#holding;
    if (holding !== undefined) {
      holding.held = 0;
      holding.ring.fill(PENDING);
    }
    this.#disarm();
  }

  /** No more holds (the manager closes, the key is removed): what is held is judged now, later outcomes as they come; the timer stops. */
  dispose(): void {
    this.#disposed = true;
    this.#disarm();
    this.#drain(this.#next);
  }
}
