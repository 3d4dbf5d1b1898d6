/**
 * The circuit: the closed → open → half-open state machine of one scope (a
 * key, a deployment), around a breaker policy that decides when to open.
 */
import { MAX_TIMER_MS } from '../../config/check';
import { FAILURE, NO_TICKET, NO_VERDICT, PassOrder, probeTicket, REFUSED, SUCCESS, type Verdict } from './order';
import type { BreakerPolicy } from './policy';
import { CircuitSettings, OPEN_MS, systemNow, type CircuitChange, type CircuitOptions, type CircuitState } from './settings';
import { assertNoIssue, describe, isCount, isPlainObject, numberIssue } from './validate';
import { endWithin } from '../../wall-clock';

export type { CircuitChange, CircuitChangeReason, CircuitOptions, CircuitState } from './settings';

/**
 * JSON-safe snapshot of a circuit (for a shared store). Half-open probes in
 * flight are not in it: they belong to the process that let them through.
 */
export interface CircuitSnapshot {
  state: CircuitState;
  /** Open only: when a probe may go through (ms epoch). */
  openUntil?: number;
  /** Probe failures since the circuit last closed that doubled the open time (0 without `maxOpenMs`). */
  reopens: number;
  /** Half-open only: probes that succeeded so far (0 otherwise). */
  probesSucceeded: number;
  /** The policy's own `state`. */
  policy: unknown;
}

const STATES: readonly CircuitState[] = ['closed', 'open', 'half-open'];

/**
 * What a circuit holds once it has opened (by failures, by hand or from a
 * snapshot): made at the first trip, so the thousands of key circuits that
 * never opened hold none of it.
 */
class Trip {
  state: CircuitState = 'closed';
  openUntil: number | undefined = undefined;
  /** The length of the open time in force (ms): how far ahead of any clock reading it can end. */
  openFor = 0;
  reopens = 0;
  probesInFlight = 0;
  probesSucceeded = 0;
  /** Half-open periods begun so far: the current one's probes carry its ticket. */
  halfOpens = 0;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  disposed = false;
}

/**
 * A circuit breaker for one scope. Deterministic: time comes from the `now`
 * clock, and its one timer ends an open period or, while closed, the wait
 * of a held failure (never both).
 *
 * - **closed**: every call passes; outcomes go to the policy, and when it says
 *   so the circuit opens (reason `failures`).
 * - **open**: calls are refused for the open time — `openMs`, doubled at each
 *   failed probe up to `maxOpenMs` when that is set. One unref'd timer moves
 *   it to half-open on time (reason `open_elapsed`); `tryPass`/`canPass` also
 *   do it when the clock says the time is up, whichever comes first.
 * - **half-open**: up to `halfOpenProbes` probes pass; other callers are
 *   refused until they settle. A probe failure opens it again
 *   (`probe_failed`); once `halfOpenProbes` probes succeeded it closes
 *   (`probe_succeeded`) and the backoff starts over.
 *
 * Outcomes are attributed to the state their call passed in: one reported
 * while open is ignored, and while half-open only the outcomes of its probes
 * decide (the ticket {@link pass} gave them; an outcome without a ticket
 * counts as a probe's while one is in flight) — one of a call that passed
 * while closed, or in an earlier half-open period, is ignored. While closed, outcomes reach the policy in the
 * order their calls passed, not the order they answer in (a
 * {@link PassOrder}, with the ticket {@link pass} gave): a burst's fast
 * failures do not open it before its slower successes are in, while a call
 * in flight for longer than the circuit's successes take holds no verdict
 * for long. The policy is reset whenever the circuit opens or closes.
 * `onChange` is called after each transition, with the circuit already in
 * its new state; if it throws, the error is ignored.
 *
 * Memory: a closed circuit that never opened is five fields (a default
 * `consecutive` policy is made at its first failure, the open-state fields
 * at its first trip, the order at its first call): there is one per key.
 */
export class Circuit {
  /** What every circuit made from the same options shares (one object for all of a manager's key circuits). */
  readonly #settings: CircuitSettings<Circuit>;
  #policy: BreakerPolicy | undefined;
  /** Undefined until the circuit first leaves `closed` (or is disposed). */
  #trip: Trip | undefined;
  /** The order outcomes are judged in while closed; made at the first call. */
  #order: PassOrder | undefined;
  /** What the circuit belongs to, set by whoever made it (a family's circuits are told apart by it in their shared `onChange`). */
  owner: unknown;

  /**
   * @param onChange Called for every transition, with the circuit (one listener may serve many circuits).
   * @param now The clock, ms epoch (default `Date.now`).
   * @throws TypeError or RangeError naming the bad option.
   */
  constructor(options: CircuitOptions | undefined, onChange: (change: CircuitChange, circuit: Circuit) => void, now: () => number = systemNow) {
    const settings = options instanceof CircuitSettings ? options : new CircuitSettings(options, onChange, now);
    this.#settings = settings;
    this.#policy = settings.lazyPolicy ? undefined : settings.makePolicy();
    this.#trip = undefined;
    this.#order = undefined;
    this.owner = undefined;
  }

  /**
   * Makes circuits of the same options, listener and clock, checked once and
   * held once for all of them (thousands of key circuits; the listener tells
   * them apart by their `owner`).
   *
   * @throws TypeError or RangeError naming the bad option.
   */
  static family(options: CircuitOptions | undefined, onChange: (change: CircuitChange, circuit: Circuit) => void, now: () => number = systemNow): () => Circuit {
    const settings = new CircuitSettings(options, onChange, now);
    return () => new Circuit(settings, onChange, now);
  }

  /** Open time after a trip, before any backoff, in ms. */
  get openMs(): number {
    return this.#settings.openMs;
  }
  /** Cap of the doubled open time, when backoff is on. */
  get maxOpenMs(): number | undefined {
    return this.#settings.maxOpenMs;
  }
  /** Probes let through while half-open. */
  get halfOpenProbes(): number {
    return this.#settings.halfOpenProbes;
  }

  /**
   * The recorded state. An open circuit whose time is up reads `open` until
   * its timer fires or `tryPass`/`canPass` notices.
   */
  get state(): CircuitState {
    return this.#trip?.state ?? 'closed';
  }

  /** When an open circuit will let a probe through (ms epoch), else undefined. */
  get openUntil(): number | undefined {
    const trip = this.#trip;
    return trip?.state === 'open' ? trip.openUntil : undefined;
  }

  /**
   * {@link openUntil} as seen at `now`: never further ahead than the open
   * time's length (a clock stepped back while open would put its end that
   * much later; the circuit's timer half-opens it on time).
   */
  openEnd(now: number): number | undefined {
    const trip = this.#trip;
    return trip?.state === 'open' && trip.openUntil !== undefined ? endWithin(trip.openUntil, trip.openFor, now) : undefined;
  }

  /**
   * Whether a call may go through now. In half-open this takes a probe slot:
   * each true must be followed by exactly one of success/failure/release.
   * Its outcome has no ticket (judged as it comes): see {@link pass}.
   */
  tryPass(): boolean {
    return this.pass() !== REFUSED;
  }

  /**
   * {@link tryPass} with the call's ticket, for its outcome
   * (`success(ticket)`, …): a number from 0 while closed (its place in the
   * order outcomes are judged in), a probe's ticket (below `JUDGED`, one per
   * half-open period: only the current period's probes decide it), and
   * `REFUSED` (the call may not go) when open or when no probe slot is free.
   */
  pass(): number {
    const trip = this.#trip;
    if (trip !== undefined) {
      this.#elapseIfDue(trip);
      if (trip.state === 'open') return REFUSED;
      if (trip.state === 'half-open') {
        if (trip.probesInFlight + trip.probesSucceeded >= this.halfOpenProbes) return REFUSED;
        trip.probesInFlight++;
        return probeTicket(trip.halfOpens);
      }
    }
    return (this.#order ??= new PassOrder(this)).take();
  }

  /** @internal A verdict in the order calls passed ({@link PassOrder}): handed to the policy; false when the circuit left `closed`. */
  judgeInOrder(verdict: Verdict): boolean {
    return this.#judge(verdict);
  }

  /**
   * Cheap check that takes no probe slot: could a call pass now? (half-open:
   * a probe slot is free; open: elapsed counts as passable). An open circuit
   * whose time is up moves to half-open here, as its timer would.
   */
  canPass(): boolean {
    const trip = this.#trip;
    if (trip === undefined) return true;
    this.#elapseIfDue(trip);
    switch (trip.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        return trip.probesInFlight + trip.probesSucceeded < this.halfOpenProbes;
    }
  }

  /**
   * A passed call succeeded, `latencyMs` after it was sent (the hold of the
   * order outcomes are judged in follows it).
   */
  success(ticket = NO_TICKET, latencyMs?: number): void {
    const trip = this.#trip;
    if (latencyMs !== undefined) this.#order?.observe(latencyMs);
    switch (trip?.state ?? 'closed') {
      case 'closed':
        this.#report(ticket, SUCCESS);
        return;
      case 'open':
        return;
      case 'half-open':
        if (!this.#probeEnds(trip!, ticket)) return;
        trip!.probesSucceeded++;
        if (trip!.probesSucceeded >= this.halfOpenProbes) this.#close('probe_succeeded');
        return;
    }
  }

  /** A passed call failed in a way that counts against this scope. */
  failure(ticket = NO_TICKET): void {
    const trip = this.#trip;
    switch (trip?.state ?? 'closed') {
      case 'closed':
        this.#report(ticket, FAILURE);
        return;
      case 'open':
        return;
      case 'half-open':
        if (!this.#probeEnds(trip!, ticket)) return;
        if (this.maxOpenMs !== undefined && this.#duration() < this.maxOpenMs) trip!.reopens++;
        this.#open('probe_failed');
        return;
    }
  }

  /**
   * A passed call ended with no verdict (aborted, or a failure that says
   * nothing about this scope): frees its probe slot, or its place in the order.
   */
  release(ticket = NO_TICKET): void {
    const trip = this.#trip;
    if (trip?.state === 'half-open') this.#probeEnds(trip, ticket);
    else if (ticket >= 0 && (trip?.state ?? 'closed') === 'closed') this.#order?.report(ticket, NO_VERDICT);
  }

  /**
   * Whether a half-open circuit's outcome is one of its probes' (the current
   * period's ticket, or none while a probe is in flight): its slot is freed.
   * Any other came from a call that passed before the circuit went half-open.
   */
  #probeEnds(trip: Trip, ticket: number): boolean {
    if (trip.probesInFlight === 0 || (ticket !== NO_TICKET && ticket !== probeTicket(trip.halfOpens))) return false;
    trip.probesInFlight--;
    return true;
  }

  /** Failures held while closed, waiting for the outcomes of calls that passed before them. */
  get held(): number {
    return this.#order?.held ?? 0;
  }

  /** A closed circuit's outcome: judged in the order of the tickets, or as it comes without one. */
  #report(ticket: number, verdict: Verdict): void {
    if (ticket < 0 || this.#order === undefined) this.#judge(verdict);
    else this.#order.report(ticket, verdict);
  }

  /** The policy's verdict on one outcome while closed; false when it opened the circuit. */
  #judge(verdict: Verdict): boolean {
    if (verdict === SUCCESS) {
      // No policy yet: a fresh lazy one ignores successes.
      this.#policy?.success(this.#settings.now());
      return true;
    }
    if (verdict !== FAILURE) return true;
    if ((this.#policy ??= this.#settings.makePolicy()).failure(this.#settings.now()) !== true) return true;
    this.#open('failures');
    return false;
  }

  /**
   * Opens the circuit by hand (reason `manual`) for `openMs` (default: the
   * current open time, backoff included). On an open circuit it only moves
   * the end of the open time.
   *
   * @throws RangeError for an `openMs` that is not a number of ms from 1 up.
   */
  forceOpen(openMs?: number): void {
    assertNoIssue(numberIssue('openMs', openMs, OPEN_MS), 'forceOpen argument');
    const ms = openMs ?? this.#duration();
    const trip = this.#trip;
    if (trip?.state === 'open') {
      trip.openUntil = this.#settings.now() + ms;
      trip.openFor = ms;
      this.#arm(trip);
      return;
    }
    this.#open('manual', ms);
  }

  /** Closes the circuit by hand (reason `manual`): the policy and the backoff start over. */
  forceClose(): void {
    if (this.state !== 'closed') this.#close('manual');
  }

  /** JSON-safe snapshot of state + policy state (for a shared store). */
  toJSON(): CircuitSnapshot {
    const trip = this.#trip;
    const state = this.state;
    const snapshot: CircuitSnapshot = {
      state,
      reopens: trip?.reopens ?? 0,
      probesSucceeded: state === 'half-open' ? trip!.probesSucceeded : 0,
      policy: (this.#policy ?? this.#settings.makePolicy()).state,
    };
    if (state === 'open' && trip!.openUntil !== undefined) snapshot.openUntil = trip!.openUntil;
    return snapshot;
  }

  /**
   * Takes the state of a snapshot (from `toJSON`, possibly of another
   * process). A changed state is reported with reason `restored`. Probes let
   * through here and still in flight keep their slots while the circuit
   * stays half-open.
   *
   * @throws TypeError, changing nothing, when the snapshot or its policy state is malformed.
   */
  restore(snapshot: CircuitSnapshot): void {
    const raw: unknown = snapshot;
    const bad = (problem: string) => new TypeError(`Cannot restore a circuit: ${problem}`);
    if (!isPlainObject(raw)) throw bad(`expected a snapshot object; got ${describe(raw)}`);
    const state = raw.state;
    if (typeof state !== 'string' || !(STATES as readonly string[]).includes(state)) {
      throw bad(`expected \`state\` 'closed', 'open' or 'half-open'; got ${describe(state)}`);
    }
    if (!isCount(raw.reopens)) throw bad(`expected \`reopens\` a whole number ≥ 0; got ${describe(raw.reopens)}`);
    if (!isCount(raw.probesSucceeded)) throw bad(`expected \`probesSucceeded\` a whole number ≥ 0; got ${describe(raw.probesSucceeded)}`);
    const openUntil = raw.openUntil;
    if (state === 'open' && (typeof openUntil !== 'number' || !Number.isFinite(openUntil))) {
      throw bad(`expected \`openUntil\` a time in ms when \`state\` is 'open'; got ${describe(openUntil)}`);
    }
    const policy = this.#policy ?? this.#settings.makePolicy();
    policy.restore(raw.policy);
    this.#policy = policy;

    const from = this.state;
    const to = state as CircuitState;
    if (to === 'closed' && this.#trip === undefined && raw.reopens === 0) return;
    const trip = (this.#trip ??= new Trip());
    trip.state = to;
    trip.reopens = this.maxOpenMs === undefined ? 0 : raw.reopens;
    trip.openUntil = to === 'open' ? (openUntil as number) : undefined;
    trip.openFor = to === 'open' ? Math.max(0, (openUntil as number) - this.#settings.now()) : 0;
    trip.probesSucceeded = to === 'half-open' ? Math.min(raw.probesSucceeded, this.halfOpenProbes - 1) : 0;
    if (to === 'open') this.#arm(trip);
    else this.#disarm(trip);
    if (from !== to) {
      this.#order?.reset();
      // A new half-open period: calls let through before it decide nothing in it.
      if (to === 'half-open') {
        trip.halfOpens++;
        trip.probesInFlight = 0;
      }
      const change: CircuitChange = { from, to, reason: 'restored' };
      if (to === 'open') change.openMs = Math.max(0, (openUntil as number) - this.#settings.now());
      this.#emit(change);
    }
  }

  /**
   * Stops its timers (the manager calls it on close, and when its key is
   * removed): held outcomes are judged now, later ones as they come. The
   * circuit still works, on its clock alone.
   */
  dispose(): void {
    const trip = (this.#trip ??= new Trip());
    trip.disposed = true;
    this.#disarm(trip);
    this.#order?.dispose();
  }

  /** The open time for the current backoff step. */
  #duration(): number {
    if (this.maxOpenMs === undefined) return this.openMs;
    return Math.min(this.openMs * 2 ** (this.#trip?.reopens ?? 0), this.maxOpenMs);
  }

  #open(reason: 'failures' | 'probe_failed' | 'manual', ms = this.#duration()): void {
    const trip = (this.#trip ??= new Trip());
    const from = trip.state;
    trip.state = 'open';
    trip.openUntil = this.#settings.now() + ms;
    trip.openFor = ms;
    trip.probesInFlight = 0;
    trip.probesSucceeded = 0;
    this.#order?.reset();
    this.#resetPolicy();
    this.#arm(trip);
    this.#emit({ from, to: 'open', reason, openMs: ms });
  }

  #halfOpen(trip: Trip): void {
    trip.state = 'half-open';
    trip.halfOpens++;
    trip.openUntil = undefined;
    trip.probesInFlight = 0;
    trip.probesSucceeded = 0;
    this.#disarm(trip);
    this.#emit({ from: 'open', to: 'half-open', reason: 'open_elapsed' });
  }

  #close(reason: 'probe_succeeded' | 'manual'): void {
    const trip = (this.#trip ??= new Trip());
    const from = trip.state;
    trip.state = 'closed';
    trip.openUntil = undefined;
    trip.reopens = 0;
    trip.probesInFlight = 0;
    trip.probesSucceeded = 0;
    this.#order?.reset();
    this.#resetPolicy();
    this.#disarm(trip);
    this.#emit({ from, to: 'closed', reason });
  }

  /** Forgets the policy's memory (a lazy one is dropped: made again at the next failure). */
  #resetPolicy(): void {
    if (this.#settings.lazyPolicy) this.#policy = undefined;
    else this.#policy!.reset();
  }

  #elapseIfDue(trip: Trip): void {
    if (trip.state === 'open' && trip.openUntil !== undefined && this.#settings.now() >= trip.openUntil) this.#halfOpen(trip);
  }

  /** (Re)starts the one timer that ends the open time. */
  #arm(trip: Trip): void {
    this.#disarm(trip);
    if (trip.disposed || trip.openUntil === undefined) return;
    const remaining = Math.max(0, trip.openUntil - this.#settings.now());
    const capped = remaining > MAX_TIMER_MS;
    const timer = setTimeout(() => {
      if (trip.timer !== timer) return;
      trip.timer = undefined;
      if (trip.state !== 'open') return;
      // A capped timer only covers part of a very long open time.
      if (capped) this.#arm(trip);
      else this.#halfOpen(trip);
    }, Math.min(remaining, MAX_TIMER_MS));
    timer.unref();
    trip.timer = timer;
  }

  #disarm(trip: Trip): void {
    if (trip.timer === undefined) return;
    clearTimeout(trip.timer);
    trip.timer = undefined;
  }

  #emit(change: CircuitChange): void {
    try {
      this.#settings.onChange(change, this);
    } catch {
      // A listener's error must not corrupt the circuit or break a request.
    }
  }
}
