/**
 * The circuit: the closed → open → half-open state machine of one scope (a
 * key, a deployment), around a breaker policy that decides when to open.
 */
import { MAX_TIMER_MS } from '../../config/check';
import { DEFAULTS } from '../../config/defaults';
import { makeBreakerPolicy, type BreakerSpec } from './create';
import type { BreakerPolicy } from './policy';
import { assertNoIssue, describe, isCount, isPlainObject, issue, numberIssue, optionsIssue, type NumberRule, type OptionRules } from './validate';

/** Where a circuit is: `closed` lets calls through, `open` refuses them, `half-open` lets probes through. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Options of a {@link Circuit}. */
export interface CircuitOptions {
  /** What opens the circuit (default `'consecutive'`: 5 failures in a row). */
  policy?: BreakerSpec;
  /**
   * How long the circuit stays open before half-open, in ms (default 30_000).
   * In `new KeyManager()` options: > 0 and at most 2^31 − 1 ms (about 24.8 days).
   */
  openMs?: number;
  /**
   * When set, each re-open while failures repeat doubles the open time up to
   * this cap (backoff); reset when it closes. At least `openMs`; in
   * `new KeyManager()` options at most 2^31 − 1 ms (default 300_000 there).
   */
  maxOpenMs?: number;
  /** Probes let through while half-open (default 1; in `new KeyManager()` options 1 to 1000); other callers are refused until the probes settle. */
  halfOpenProbes?: number;
}

/** Why a circuit changed state. */
export type CircuitChangeReason = 'failures' | 'probe_failed' | 'open_elapsed' | 'probe_succeeded' | 'restored' | 'manual';

/** The default clock (one function for every circuit). */
const systemNow = (): number => Date.now();

/** One state transition, as passed to the circuit's `onChange`. */
export interface CircuitChange {
  from: CircuitState;
  to: CircuitState;
  reason: CircuitChangeReason;
  /** When `to` is `open`: how long it stays open from now, in ms. */
  openMs?: number;
}

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


const OPEN_MS: NumberRule = { min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'an open time in ms from 1 up' };

const RULES: OptionRules = {
  openMs: OPEN_MS,
  maxOpenMs: { min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a cap on the open time in ms from 1 up' },
  halfOpenProbes: { integer: true, min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a whole number of probes from 1 up' },
};

const WHAT = 'circuit option';

/** A circuit's checked options, listener and clock (shared by the circuits of a {@link Circuit.family}). */
class CircuitSettings {
  readonly openMs: number;
  readonly maxOpenMs: number | undefined;
  readonly halfOpenProbes: number;
  readonly policy: BreakerSpec;
  readonly onChange: (change: CircuitChange, circuit: Circuit) => void;
  readonly now: () => number;

  constructor(options: CircuitOptions | undefined, onChange: (change: CircuitChange, circuit: Circuit) => void, now: () => number) {
    assertNoIssue(optionsIssue(options, RULES, ['policy']), WHAT);
    options ??= {};
    if (typeof onChange !== 'function') throw new TypeError(`Invalid circuit argument \`onChange\`: expected a function; got ${describe(onChange)}`);
    if (typeof now !== 'function') throw new TypeError(`Invalid circuit argument \`now\`: expected a function; got ${describe(now)}`);
    this.openMs = options.openMs ?? DEFAULTS.circuit.openMs;
    this.maxOpenMs = options.maxOpenMs;
    if (this.maxOpenMs !== undefined && this.maxOpenMs < this.openMs) {
      assertNoIssue(issue('maxOpenMs', `expected at least \`openMs\` (${this.openMs}); got ${this.maxOpenMs}`, 'RangeError'), WHAT);
    }
    this.halfOpenProbes = options.halfOpenProbes ?? DEFAULTS.circuit.halfOpenProbes;
    this.policy = options.policy ?? 'consecutive';
    this.onChange = onChange;
    this.now = now;
  }
}

/**
 * A circuit breaker for one scope. Deterministic: time comes from the `now`
 * clock, and the only timer is the one that ends an open period.
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
 * Outcomes are attributed to the current state: one reported while open, or
 * while half-open with no probe in flight, comes from a call let through
 * earlier and is ignored. The policy is reset whenever the circuit opens or
 * closes. `onChange` is called after each transition, with the circuit
 * already in its new state; if it throws, the error is ignored.
 */
export class Circuit {
  /** What every circuit made from the same options shares (one object for all of a manager's key circuits). */
  readonly #settings: CircuitSettings;
  readonly #policy: BreakerPolicy;
  #state: CircuitState = 'closed';
  #openUntil: number | undefined;
  #reopens = 0;
  #probesInFlight = 0;
  #probesSucceeded = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #disposed = false;

  /**
   * @param onChange Called for every transition, with the circuit (one listener may serve many circuits).
   * @param now The clock, ms epoch (default `Date.now`).
   * @throws TypeError or RangeError naming the bad option.
   */
  constructor(options: CircuitOptions | undefined, onChange: (change: CircuitChange, circuit: Circuit) => void, now: () => number = systemNow) {
    const settings = options instanceof CircuitSettings ? options : new CircuitSettings(options, onChange, now);
    this.#settings = settings;
    this.#policy = makeBreakerPolicy(settings.policy, WHAT, 'policy');
  }

  /**
   * Makes circuits of the same options, listener and clock, checked once and
   * held once for all of them (thousands of key circuits).
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
    return this.#state;
  }

  /** When an open circuit will let a probe through (ms epoch), else undefined. */
  get openUntil(): number | undefined {
    return this.#state === 'open' ? this.#openUntil : undefined;
  }

  /**
   * Whether a call may go through now. In half-open this takes a probe slot:
   * each true must be followed by exactly one of success/failure/release.
   */
  tryPass(): boolean {
    this.#elapseIfDue();
    switch (this.#state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.#probesInFlight + this.#probesSucceeded >= this.halfOpenProbes) return false;
        this.#probesInFlight++;
        return true;
    }
  }

  /**
   * Cheap check that takes no probe slot: could a call pass now? (half-open:
   * a probe slot is free; open: elapsed counts as passable). An open circuit
   * whose time is up moves to half-open here, as its timer would.
   */
  canPass(): boolean {
    this.#elapseIfDue();
    switch (this.#state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        return this.#probesInFlight + this.#probesSucceeded < this.halfOpenProbes;
    }
  }

  /** A passed call succeeded. */
  success(): void {
    switch (this.#state) {
      case 'closed':
        this.#policy.success(this.#settings.now());
        return;
      case 'open':
        return;
      case 'half-open':
        if (this.#probesInFlight === 0) return;
        this.#probesInFlight--;
        this.#probesSucceeded++;
        if (this.#probesSucceeded >= this.halfOpenProbes) this.#close('probe_succeeded');
        return;
    }
  }

  /** A passed call failed in a way that counts against this scope. */
  failure(): void {
    switch (this.#state) {
      case 'closed':
        if (this.#policy.failure(this.#settings.now()) === true) this.#open('failures');
        return;
      case 'open':
        return;
      case 'half-open':
        if (this.#probesInFlight === 0) return;
        this.#probesInFlight--;
        if (this.maxOpenMs !== undefined && this.#duration() < this.maxOpenMs) this.#reopens++;
        this.#open('probe_failed');
        return;
    }
  }

  /** A passed call ended with no verdict (aborted, or a failure that says nothing about this scope): frees its probe slot. */
  release(): void {
    if (this.#state === 'half-open' && this.#probesInFlight > 0) this.#probesInFlight--;
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
    if (this.#state === 'open') {
      this.#openUntil = this.#settings.now() + ms;
      this.#arm();
      return;
    }
    this.#open('manual', ms);
  }

  /** Closes the circuit by hand (reason `manual`): the policy and the backoff start over. */
  forceClose(): void {
    if (this.#state !== 'closed') this.#close('manual');
  }

  /** JSON-safe snapshot of state + policy state (for a shared store). */
  toJSON(): CircuitSnapshot {
    const snapshot: CircuitSnapshot = {
      state: this.#state,
      reopens: this.#reopens,
      probesSucceeded: this.#state === 'half-open' ? this.#probesSucceeded : 0,
      policy: this.#policy.state,
    };
    if (this.#state === 'open' && this.#openUntil !== undefined) snapshot.openUntil = this.#openUntil;
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
    this.#policy.restore(raw.policy);

    const from = this.#state;
    const to = state as CircuitState;
    this.#state = to;
    this.#reopens = this.maxOpenMs === undefined ? 0 : raw.reopens;
    this.#openUntil = to === 'open' ? (openUntil as number) : undefined;
    this.#probesSucceeded = to === 'half-open' ? Math.min(raw.probesSucceeded, this.halfOpenProbes - 1) : 0;
    if (to === 'open') this.#arm();
    else this.#disarm();
    if (from !== to) {
      const change: CircuitChange = { from, to, reason: 'restored' };
      if (to === 'open') change.openMs = Math.max(0, (openUntil as number) - this.#settings.now());
      this.#emit(change);
    }
  }

  /** Stops its timer (the manager calls it on close). The circuit still works, on its clock alone. */
  dispose(): void {
    this.#disposed = true;
    this.#disarm();
  }

  /** The open time for the current backoff step. */
  #duration(): number {
    if (this.maxOpenMs === undefined) return this.openMs;
    return Math.min(this.openMs * 2 ** this.#reopens, this.maxOpenMs);
  }

  #open(reason: 'failures' | 'probe_failed' | 'manual', ms = this.#duration()): void {
    const from = this.#state;
    this.#state = 'open';
    this.#openUntil = this.#settings.now() + ms;
    this.#probesInFlight = 0;
    this.#probesSucceeded = 0;
    this.#policy.reset();
    this.#arm();
    this.#emit({ from, to: 'open', reason, openMs: ms });
  }

  #halfOpen(): void {
    this.#state = 'half-open';
    this.#openUntil = undefined;
    this.#probesInFlight = 0;
    this.#probesSucceeded = 0;
    this.#disarm();
    this.#emit({ from: 'open', to: 'half-open', reason: 'open_elapsed' });
  }

  #close(reason: 'probe_succeeded' | 'manual'): void {
    const from = this.#state;
    this.#state = 'closed';
    this.#openUntil = undefined;
    this.#reopens = 0;
    this.#probesInFlight = 0;
    this.#probesSucceeded = 0;
    this.#policy.reset();
    this.#disarm();
    this.#emit({ from, to: 'closed', reason });
  }

  #elapseIfDue(): void {
    if (this.#state === 'open' && this.#openUntil !== undefined && this.#settings.now() >= this.#openUntil) this.#halfOpen();
  }

  /** (Re)starts the one timer that ends the open time. */
  #arm(): void {
    this.#disarm();
    if (this.#disposed || this.#openUntil === undefined) return;
    const remaining = Math.max(0, this.#openUntil - this.#settings.now());
    const capped = remaining > MAX_TIMER_MS;
    const timer = setTimeout(() => {
      if (this.#timer !== timer) return;
      this.#timer = undefined;
      if (this.#state !== 'open') return;
      // A capped timer only covers part of a very long open time.
      if (capped) this.#arm();
      else this.#halfOpen();
    }, Math.min(remaining, MAX_TIMER_MS));
    timer.unref();
    this.#timer = timer;
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #emit(change: CircuitChange): void {
    try {
      this.#settings.onChange(change, this);
    } catch {
      // A listener's error must not corrupt the circuit or break a request.
    }
  }
}
