/**
 * A request's abort state, kept cheap on the hot path: one AbortController
 * for the request, aborted directly by the three things that end it (the
 * deadline, the caller's signal, `close()`), one timer serving both the
 * deadline and the current attempt's timeout (re-armed lazily to the nearer),
 * and one listener on the caller's signal, added once and removed at the end.
 *
 * An attempt shares the request's controller unless it must be abortable on
 * its own while something outside the attempt holds the request's signal
 * (hooks, whose signal only the request's end aborts): then it gets its own
 * controller, aborted directly, never through a listener. When a shared attempt times out, the
 * controller it shared is aborted (its fetch and body end) and the request
 * goes on with a fresh one.
 */
import { JITTER_MS } from '../blocked-loop';
import { CLOCK_STEP_MS } from '../wall-clock';
import { AttemptTimeout } from './failure';

const ONCE = Object.freeze({ once: true });

/** Whether a value is a promise: a native one, another realm's or a library's (anything with a `then` method). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * What a wait outside the request's own stages gave (a hook's result, a
 * store's answer, the store's first load): the value itself, or for any
 * thenable a promise that settles with it or, should `signal` abort first,
 * rejects with `ended()` (by default the signal's reason) — so that code that
 * never answers cannot hold a request past its end (what it settles with
 * later is ignored). The listener goes when either settles.
 */
export function untilAborted<T>(value: T | PromiseLike<T>, signal: AbortSignal, ended: () => unknown = () => signal.reason): T | Promise<T> {
  if (!isThenable(value)) return value;
  return new Promise<T>((resolve, reject) => {
    const end = () => reject(ended());
    if (signal.aborted) end();
    else signal.addEventListener('abort', end, ONCE);
    Promise.resolve(value).then(
      (result) => {
        signal.removeEventListener('abort', end);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', end);
        reject(error);
      },
    );
  });
}

export class RequestAbort {
  /** The request's controller: what the stages and the attempts' fetches listen to. */
  #control = new AbortController();
  /** The current attempt's own controller, when it has one. */
  #attempt: AbortController | undefined = undefined;
  /** When the current attempt times out; Infinity when no attempt timeout runs. */
  #attemptDue = Infinity;
  /** The current attempt's timeout, ms, while a blocked loop may still make it wait that long again (once); else 0. */
  #attemptMs = 0;
  /** When the deadline ends the request; Infinity once it no longer bounds it. */
  #deadlineAt: number;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #timerAt = Infinity;
  /** The timer fired: its verdict waits for the sockets to be read ({@link #fire}). */
  #judging: ReturnType<typeof setImmediate> | undefined = undefined;
  /** When the timer is due on the monotonic clock (performance.now()): with the wall clock's, tells a blocked loop from a stepped clock. */
  #monotonicDue = 0;
  /**
   * The request's time is the clock's reading minus this: the steps of the
   * wall clock during the request (NTP, a resumed VM), as its timer or its
   * readings found them ({@link #time}, {@link #fire}). Its deadline and
   * attempt timeouts are moments of that time, so a step neither ends the
   * request early nor lets it run past its deadline.
   */
  #offset = 0;
  /** The latest of the request's times seen. */
  #seen: number;
  #caller: AbortSignal | undefined;
  /** Whether {@link #callerAborted} listens to the caller's signal. */
  #listening = false;
  /** True once the request ended (deadline, caller, close()). */
  ended = false;
  /** True when the current attempt ended by its own timeout. */
  attemptTimedOut = false;
  /** Rejects the wait {@link bounded} set up, when the attempt ends first. */
  #interrupt: ((reason: unknown) => void) | undefined = undefined;
  /** The stream tap's watcher of the request's end ({@link watch}), and the controller whose abort it waits for. */
  #watcher: ((reason: unknown) => void) | undefined = undefined;
  #watched: AbortController | undefined = undefined;
  /** Its neighbours in {@link ActiveRequests} while it is listed there. */
  before: RequestAbort | undefined = undefined;
  after: RequestAbort | undefined = undefined;

  constructor(now: number, deadlineMs: number, firstAttemptTimeoutMs: number, caller: AbortSignal | undefined) {
    this.#seen = now;
    this.#deadlineAt = now + deadlineMs;
    // Armed once for the nearer of the deadline and the first attempt's timeout (that attempt starts a little later: re-armed then, when it fires).
    this.#arm(now, Math.min(this.#deadlineAt, now + firstAttemptTimeoutMs));
    this.#caller = caller;
    if (caller?.aborted) this.abort(caller.reason);
    else if (caller !== undefined) {
      this.#listening = true;
      caller.addEventListener('abort', this.#callerAborted, ONCE);
    }
  }

  /**
   * The caller's signal aborted. A function, not this object as the listener
   * (`handleEvent`): with the object listening, every finished request's
   * objects outlived V8's young-generation collections until the next full
   * one — 1.9 KB per JSON request through `manager.fetch` with a caller's
   * signal, as the SDK always gives, against 0.45 KB with a function (as the
   * stream tap found before; test/pipeline/request-young.test.ts).
   */
  readonly #callerAborted = (): void => {
    this.#listening = false;
    this.abort(this.#caller!.reason);
  };

  /** The request's signal as it is now (a timed-out shared attempt leaves a fresh one behind). */
  get signal(): AbortSignal {
    return this.#control.signal;
  }

  /** Ends the request: the deadline, the caller's signal and close() call this. */
  abort(reason: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.#attempt?.abort(reason);
    this.#control.abort(reason);
    this.#notify(this.#control);
    this.#interrupted(reason);
  }

  /**
   * A streamed reply's tap watches the request's end (usage/sse.ts
   * `StreamEnding`): `ended` is called when the request's signal as it is now
   * aborts — directly, as that signal's listener would be, with no listener
   * added to it and removed. False when it has aborted already (`ended` is
   * then called in a microtask).
   */
  watch(ended: (reason: unknown) => void): boolean {
    const control = this.#control;
    if (control.signal.aborted) {
      queueMicrotask(() => ended(control.signal.reason));
      return false;
    }
    this.#watched = control;
    this.#watcher = ended;
    return true;
  }

  unwatch(): void {
    this.#watched = undefined;
    this.#watcher = undefined;
  }

  /** `control` aborted: the watcher of its end is told, once. */
  #notify(control: AbortController): void {
    const ended = this.#watcher;
    if (ended === undefined || this.#watched !== control) return;
    this.unwatch();
    ended(control.signal.reason);
  }

  /**
   * `pending` (a call of the attempt's fetch, or a read of its body), rejected
   * with the reason when the attempt's signal aborts first: for a `fetch`
   * option that may not honour its signal. No listener on the signal (adding
   * and removing one cost ~11,000 instructions): this object aborts that
   * signal itself, and rejects the wait then. One wait at a time.
   */
  bounded<T>(pending: Promise<T>): Promise<T> {
    if (this.ended || this.#attempt?.signal.aborted === true) {
      pending.catch(() => undefined);
      return Promise.reject((this.#attempt?.signal ?? this.#control.signal).reason);
    }
    // The wait's own resolvers settle it: no closures made per wait. The interrupt left behind once `pending` settled
    // rejects a settled promise (nothing); the next wait or the request's end drops it.
    return new Promise<T>((resolve, reject) => {
      this.#interrupt = reject;
      pending.then(resolve, reject);
    });
  }

  #interrupted(reason: unknown): void {
    const interrupt = this.#interrupt;
    this.#interrupt = undefined;
    interrupt?.(reason);
  }

  /**
   * Whether the request is over as of `now`: ended, or past its deadline
   * though its timer has not run yet — timers due at one moment run one after
   * another, and what the first frees (a lane slot, a key) lets the others go
   * on before theirs run. Ends such a request here. A clock more than
   * {@link CLOCK_STEP_MS} past the deadline with its timer not run stepped
   * forward (NTP, a resumed VM): the timer, on the monotonic clock, ends the
   * request when its time has passed.
   */
  overdue(now: number): boolean {
    const t = this.#time(now);
    if (!this.ended && t >= this.#deadlineAt && t - this.#deadlineAt < CLOCK_STEP_MS) this.abort(new AttemptTimeout('deadline'));
    return this.ended;
  }

  /**
   * The request's time at the clock reading `now`, as its deadline
   * (`startedAt + deadlineMs`) is a moment of it. A reading more than
   * {@link CLOCK_STEP_MS} behind the latest seen is the clock stepped back:
   * the request's time goes on from the latest. One more than that past its
   * timer's moment, the timer not run yet, and not as far on the monotonic
   * clock, is the clock stepped forward: the request's time is the timer's
   * (as {@link #judge} would find once it runs). For the waits judged against
   * the deadline (a retry's, a wait for a key), not on every request's path.
   */
  time(now: number): number {
    const t = this.#time(now);
    return this.#timer !== undefined && t > this.#timerAt + CLOCK_STEP_MS ? this.#steppedForward(t) : t;
  }

  #steppedForward(t: number): number {
    // Late on the monotonic clock as well is the loop blocked: the reading stands.
    const byTimer = this.#timerAt + (performance.now() - this.#monotonicDue);
    if (t - byTimer <= CLOCK_STEP_MS) return t;
    this.#offset += t - byTimer;
    this.#seen = byTimer;
    return byTimer;
  }

  #time(now: number): number {
    const t = now - this.#offset;
    if (t > this.#seen) this.#seen = t;
    else if (t < this.#seen - CLOCK_STEP_MS) {
      this.#offset -= this.#seen - t;
      return this.#seen;
    }
    return t;
  }

  /** An attempt is sent: arms its timeout; returns the signal its fetch listens to. */
  startAttempt(reading: number, timeoutMs: number, own: boolean): AbortSignal {
    const now = this.#time(reading);
    this.attemptTimedOut = false;
    this.#attemptDue = now + timeoutMs;
    this.#attemptMs = timeoutMs;
    if (this.#attemptDue < this.#timerAt) this.#arm(now, this.#attemptDue);
    if (!own) return this.#control.signal;
    const control = new AbortController();
    this.#attempt = control;
    if (this.ended) control.abort(this.#control.signal.reason);
    return control.signal;
  }

  /** The attempt's timeout stands still (hooks run on its answer: their time is not the upstream's); returns what is left of it, ms. */
  pauseAttempt(reading: number): number {
    const now = this.#time(reading);
    const left = this.#attemptDue - now;
    this.#attemptDue = Infinity;
    return left;
  }

  /** A paused attempt timeout runs again, `leftMs` from `now` (nothing when it no longer applies). */
  resumeAttempt(reading: number, leftMs: number): void {
    if (leftMs === Infinity || this.ended) return;
    const now = this.#time(reading);
    this.#attemptDue = now + leftMs;
    if (this.#attemptDue < this.#timerAt) this.#arm(now, this.#attemptDue);
  }

  /** The attempt's timeout no longer applies (it ended, or its first bytes are in). */
  endAttempt(): void {
    this.#attemptDue = Infinity;
    this.#attempt = undefined;
  }

  /** A stream read after the pipeline call is no longer bounded by the deadline (`streamDeadline: 'first-byte'`). */
  dropDeadline(): void {
    this.#deadlineAt = Infinity;
    if (this.#attemptDue === Infinity) this.#clear();
  }

  /** The request is over: no timer and no listener left. */
  detach(): void {
    this.#clear();
    this.#interrupt = undefined;
    if (this.#listening) this.#caller!.removeEventListener('abort', this.#callerAborted);
    this.#listening = false;
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#judging !== undefined) clearImmediate(this.#judging);
    this.#timer = this.#judging = undefined;
    this.#timerAt = Infinity;
  }

  /** Arms the timer for `at`; a verdict pending for the previous one is this one's to give. */
  #arm(now: number, at: number): void {
    this.#clear();
    this.#timerAt = at;
    if (at === Infinity) return;
    const ms = Math.max(0, at - now);
    this.#monotonicDue = performance.now() + ms;
    this.#timer = setTimeout(this.#fire, ms);
  }

  /**
   * The timer's moment came. Judged once the sockets were read: after its
   * loop was blocked (a CPU-bound handler, a long GC pause, a throttled
   * container), Node runs the timers due before it reads what arrived
   * meanwhile, and an answer already waiting would be timed out, its key
   * blamed and the request sent again. setImmediate runs after that read.
   * Only when a timer fires: no cost to a request that ends before it.
   */
  #fire = (): void => {
    this.#timer = undefined;
    // How long the loop was blocked past the timer's moment: late on both clocks (a wall clock stepped forward is late on its own).
    const blocked = Math.min(Date.now() - this.#offset - this.#timerAt, performance.now() - this.#monotonicDue);
    this.#judging = setImmediate(() => this.#judge(blocked));
  };

  #judge(blocked: number): void {
    this.#judging = undefined;
    // The timer's moment is reached (on the monotonic clock), whatever a coarser clock says. A clock far from it stepped
    // (or the loop was blocked, which moves the request's time as little as a step would): the moment is the timer's.
    const t = Date.now() - this.#offset;
    const at = this.#timerAt;
    let now = t > at ? t : at;
    if (Math.abs(t - at) > CLOCK_STEP_MS) {
      this.#offset += t - at;
      now = at;
    }
    if (now > this.#seen) this.#seen = now;
    this.#timerAt = Infinity;
    if (this.ended) return;
    if (now >= this.#deadlineAt) {
      this.abort(new AttemptTimeout('deadline'));
      return;
    }
    if (now >= this.#attemptDue) this.#attemptDueNow(now, blocked);
    this.#arm(now, Math.min(this.#deadlineAt, this.#attemptDue));
  }

  /**
   * The attempt's timeout is reached, its answer not in. When the loop was
   * blocked over its moment (the timer ran late by more than half the
   * timeout, on the monotonic clock as on the wall clock: a wall clock
   * stepped forward is no stall), the stall may have come before the request went out (a
   * listener, a handler, a GC pause between the attempt's start and its
   * write): the upstream had no fair wait, and the attempt waits its timeout
   * once more, as the Redis store's waits do (blocked-loop.ts). The
   * deadline bounds it still.
   */
  #attemptDueNow(now: number, blocked: number): void {
    const patience = this.#attemptMs;
    this.#attemptMs = 0;
    if (patience > 0 && blocked > Math.max(JITTER_MS, patience / 2)) this.#attemptDue = now + patience;
    else this.#timeOutAttempt();
  }

  #timeOutAttempt(): void {
    this.attemptTimedOut = true;
    this.#attemptDue = Infinity;
    const timeout = new AttemptTimeout('attempt');
    if (this.#attempt !== undefined) {
      this.#attempt.abort(timeout);
      this.#attempt = undefined;
    } else {
      const shared = this.#control;
      this.#control = new AbortController();
      shared.abort(timeout);
      this.#notify(shared);
    }
    this.#interrupted(timeout);
  }
}

/**
 * The requests in flight, for close(): a list threaded through the requests
 * themselves, so that a request joins and leaves it without a set entry made
 * and dropped (and a table rehashed) each time.
 */
export class ActiveRequests {
  #first: RequestAbort | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(abort: RequestAbort): void {
    abort.before = undefined;
    abort.after = this.#first;
    if (this.#first !== undefined) this.#first.before = abort;
    this.#first = abort;
    this.#size++;
  }

  /** Takes `abort` out of the list (nothing when it is not in it). */
  delete(abort: RequestAbort): void {
    const { before, after } = abort;
    if (before === undefined && this.#first !== abort) return;
    if (before === undefined) this.#first = after;
    else before.after = after;
    if (after !== undefined) after.before = before;
    abort.before = abort.after = undefined;
    this.#size--;
  }

  /** Ends every request in flight with `reason` and empties the list. */
  abortAll(reason: unknown): void {
    let abort = this.#first;
    this.#first = undefined;
    this.#size = 0;
    while (abort !== undefined) {
      const next = abort.after;
      abort.before = abort.after = undefined;
      abort.abort(reason);
      abort = next;
    }
  }
}
