/**
 * Bulkhead lanes (DESIGN.md step 2 "Admit", §3): each lane has its own bounded
 * concurrency and its own bounded queue, so a flood of `batch` work cannot
 * delay `critical` work, and a queue that is full sheds load at once with a
 * typed error instead of growing without bound.
 *
 * One `p-queue` per lane does the scheduling (FIFO within a lane). Around it
 * this module adds what p-queue has not: the `maxQueue` bound, a per-request
 * queue timeout, a caller's AbortSignal that only ever cancels *waiting* (a
 * request that has started keeps its slot until its work settles; stopping the
 * work is the work's own business), slots that outlive a promise (`acquire`),
 * and closing.
 *
 * Cost per admission is O(1): one p-queue entry, at most one timer (only for a
 * request that has to wait; unref'd, cleared when it starts) and at most one
 * entry in a per-signal table, so many requests sharing one AbortSignal add one
 * listener to it, not one each.
 */
import PQueue from 'p-queue';
import { ConfigError, LaneFullError, ManagerClosedError, QueueTimeoutError, UnknownLaneError } from '../../errors';
import { describe } from '../../config/check';
import { checkLane, type LaneOptions } from './options';

/** A snapshot of one lane, from {@link Bulkhead.stats}. */
export interface LaneStats {
  /** Requests holding a slot now. */
  running: number;
  /** Requests waiting for a slot now. */
  queued: number;
  /** The lane's `concurrency`. */
  concurrency: number;
  /** The lane's `maxQueue`. */
  maxQueue: number;
  /** Requests refused so far (since the start or the last `stats({ reset: true })`) because the lane was full or the bulkhead closed. */
  rejected: number;
  /** Requests dropped so far (since the start or the last `stats({ reset: true })`) because they waited longer than `queueTimeoutMs`. */
  timedOut: number;
}

/**
 * What {@link Bulkhead}'s `onRejected` callback gets when it refuses a
 * request: `'full'` when the lane's queue was full, `'closed'` after
 * {@link Bulkhead.close}. The load is the lane's at that moment.
 */
export interface LaneRejection {
  lane: string;
  reason: 'full' | 'closed';
  running: number;
  queued: number;
  concurrency: number;
  maxQueue: number;
}

/** One request that waits for a slot. */
interface Waiter {
  readonly lane: Lane;
  /** Aborts to take the request out of p-queue's queue; never aborts after the request started. */
  readonly controller: AbortController;
  readonly enqueuedAt: number;
  started: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The caller's signal, while the waiter is listed under it. */
  signal: AbortSignal | undefined;
}

interface Lane {
  readonly name: string;
  readonly options: Readonly<LaneOptions>;
  /**
   * The waiting line, FIFO, one at a time: its head waits for a free slot,
   * takes it and leaves the line. Requests that find the line empty and a
   * slot free skip it (the fast path: no promise, no timer).
   */
  readonly queue: PQueue;
  /** Slots held now. */
  running: number;
  /** Wakes the head of the line when a slot frees. */
  slotFreed: (() => void) | undefined;
  /** Resolved when the lane has nothing running or waiting. */
  idleWaiters: (() => void)[];
  rejected: number;
  timedOut: number;
  /** Insertion-ordered (FIFO), for `close('reject')`. */
  readonly waiting: Set<Waiter>;
}

/** The waiters listed under one caller signal, and the one listener on it. */
interface SignalEntry {
  readonly waiters: Set<Waiter>;
  readonly listener: () => void;
}

/**
 * Named lanes of bounded concurrency and bounded queues.
 *
 * - A request starts at once while its lane has a free slot, else waits FIFO.
 * - A request that would make the lane's queue longer than `maxQueue` is
 *   rejected at once with a {@link LaneFullError} and `onRejected` is called.
 * - A request that waits longer than `queueTimeoutMs` fails with a
 *   {@link QueueTimeoutError}; its work never runs.
 * - A caller's `signal` that aborts while the request waits rejects it with
 *   `signal.reason`; its work never runs and it takes no slot. Once the work
 *   has started the signal no longer matters here: the slot is held until the
 *   work settles (for {@link Bulkhead.acquire}: until `release` is called).
 * - After {@link Bulkhead.close} new requests are rejected with a
 *   {@link ManagerClosedError} (and `onRejected` with reason `'closed'`).
 *
 * `run` and `acquire` never throw synchronously: every refusal is a rejected
 * promise.
 */
export class Bulkhead {
  readonly #lanes = new Map<string, Lane>();
  readonly #onRejected: ((rejection: LaneRejection) => void) | undefined;
  readonly #bySignal = new Map<AbortSignal, SignalEntry>();
  #closed = false;

  /**
   * @param lanes The lanes by name, e.g. from {@link resolveLanes}. The options
   *   are copied; later changes to the object have no effect.
   * @param onRejected Called (synchronously, before the promise rejects) each
   *   time a request is refused because its lane is full or the bulkhead is
   *   closed; an exception it throws is ignored.
   * @throws {ConfigError} when a lane's options are malformed (field `lanes.<name>.<option>`).
   */
  constructor(lanes: Readonly<Record<string, Readonly<LaneOptions>>>, onRejected?: (rejection: LaneRejection) => void) {
    for (const [name, raw] of Object.entries(lanes)) {
      const checked = checkLane(name, raw, undefined);
      if ('field' in checked) throw new ConfigError(checked.field, checked.problem);
      const options = Object.freeze(checked.lane);
      this.#lanes.set(name, {
        name,
        options,
        queue: new PQueue({ concurrency: 1 }),
        running: 0,
        slotFreed: undefined,
        idleWaiters: [],
        rejected: 0,
        timedOut: 0,
        waiting: new Set(),
      });
    }
    this.#onRejected = onRejected;
  }

  /**
   * Runs `task` in `lane` as soon as a slot is free, and settles like it. The
   * slot is held until the task's promise settles.
   *
   * @param signal Aborts *waiting*: the promise rejects with `signal.reason`
   *   and `task` never runs. An already aborted signal rejects at once.
   * @returns What `task` resolves to. Rejects with {@link UnknownLaneError},
   *   {@link LaneFullError}, {@link QueueTimeoutError}, {@link ManagerClosedError}
   *   (after `close`), the signal's reason, or `task`'s own error.
   */
  run<T>(lane: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const fast = this.#fast(lane, signal);
    if (fast !== undefined) {
      // Started synchronously, like p-queue does with a free slot.
      let running: Promise<T>;
      try {
        running = task();
      } catch (error) {
        fast();
        return Promise.reject(error);
      }
      return Promise.resolve(running).finally(fast);
    }
    return this.#admit(lane, signal).then(async (release) => {
      try {
        return await task();
      } finally {
        release();
      }
    });
  }

  /**
   * Like {@link Bulkhead.run}, but the caller releases the slot itself: resolves
   * with a `release` function once admitted, for work that outlives a promise
   * (e.g. a response stream the caller reads later). Calling `release` more
   * than once is harmless. A slot never released is held for good, so release
   * in a `finally`.
   */
  acquire(lane: string, signal?: AbortSignal): Promise<() => void> {
    const fast = this.#fast(lane, signal);
    return fast === undefined ? this.#admit(lane, signal) : Promise.resolve(fast);
  }

  /**
   * A slot of `lane` at once, when it has one free and nobody waits (the
   * lane exists, the bulkhead is open, `signal` has not aborted): its
   * `release`, as {@link Bulkhead.acquire} would resolve with. Otherwise
   * `undefined` and nothing taken: then {@link Bulkhead.acquire} waits (or refuses).
   */
  tryAcquire(lane: string, signal?: AbortSignal): (() => void) | undefined {
    return this.#fast(lane, signal);
  }

  /** The fast path: the lane exists, is open, nobody waits and a slot is free; takes it. */
  #fast(laneName: string, signal: AbortSignal | undefined): (() => void) | undefined {
    const lane = this.#lanes.get(laneName);
    if (lane === undefined || this.#closed || signal?.aborted || queued(lane) !== 0 || lane.running >= lane.options.concurrency) return undefined;
    lane.running++;
    return this.#release(lane);
  }

  /** Whether a lane of this name is configured. */
  has(lane: string): boolean {
    return this.#lanes.has(lane);
  }

  /** A snapshot of every lane, by name. */
  stats(): Record<string, LaneStats> {
    return Object.fromEntries(
      [...this.#lanes.values()].map((lane) => [
        lane.name,
        {
          running: lane.running,
          queued: queued(lane),
          concurrency: lane.options.concurrency,
          maxQueue: lane.options.maxQueue,
          rejected: lane.rejected,
          timedOut: lane.timedOut,
        },
      ]),
    );
  }

  /** Starts every lane's `rejected` and `timedOut` counts from zero (`stats({ reset: true })`); running and queued work are untouched. */
  resetCounts(): void {
    for (const lane of this.#lanes.values()) lane.rejected = lane.timedOut = 0;
  }

  /** Resolves when no lane has running or queued work. */
  async onIdle(): Promise<void> {
    const lanes = [...this.#lanes.values()];
    // A task finishing in one lane can start work in another, so check again after waking.
    while (!lanes.every(idle)) {
      await Promise.all(lanes.map((lane) => (idle(lane) ? undefined : new Promise<void>((resolve) => lane.idleWaiters.push(resolve)))));
    }
  }

  /**
   * Stops admitting: from now on `run` and `acquire` reject with a
   * {@link ManagerClosedError} and `onRejected` is called with reason
   * `'closed'`.
   *
   * @param mode `'drain'` (default): work already queued still runs (its queue
   *   timeout still applies). `'reject'`: work still waiting is rejected with
   *   `error` and never runs. In both modes running work finishes.
   * @param error What queued work is rejected with in `'reject'` mode; a
   *   {@link ManagerClosedError} by default.
   * @returns Resolves when no lane has running or queued work. Calling it again
   *   is harmless (and `'reject'` then rejects whatever still waits).
   */
  async close(mode: 'drain' | 'reject' = 'drain', error?: Error): Promise<void> {
    if (mode !== 'drain' && mode !== 'reject') {
      throw new TypeError(`keyplex: Bulkhead.close() takes mode 'drain' or 'reject'; got ${describe(mode)}`);
    }
    this.#closed = true;
    if (mode === 'reject') {
      const reason = error ?? new ManagerClosedError();
      for (const lane of this.#lanes.values()) {
        for (const waiter of [...lane.waiting]) this.#cancel(waiter, reason);
      }
    }
    await this.onIdle();
  }

  /** Admits a request into `laneName`; resolves with its release once it holds a slot. */
  #admit(laneName: string, signal: AbortSignal | undefined): Promise<() => void> {
    const lane = this.#lanes.get(laneName);
    if (lane === undefined) return Promise.reject(new UnknownLaneError(laneName, [...this.#lanes.keys()]));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) {
      this.#refuse(lane, 'closed');
      return Promise.reject(new ManagerClosedError());
    }
    const { concurrency, maxQueue } = lane.options;
    if (lane.running + queued(lane) >= concurrency + maxQueue) {
      const load = this.#refuse(lane, 'full');
      return Promise.reject(new LaneFullError(lane.name, load));
    }

    const waiter: Waiter = {
      lane,
      controller: new AbortController(),
      enqueuedAt: Date.now(),
      started: false,
      timer: undefined,
      signal: undefined,
    };
    this.#wait(waiter, signal);
    return lane.queue.add(
      async () => {
        while (lane.running >= concurrency) {
          await new Promise<void>((resolve) => (lane.slotFreed = resolve));
        }
        if (waiter.controller.signal.aborted) throw waiter.controller.signal.reason;
        this.#start(waiter);
        return this.#release(lane);
      },
      { signal: waiter.controller.signal },
    );
  }

  /** A release for one slot of `lane`: frees it once, wakes the line's head, tells idle waiters. */
  #release(lane: Lane): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      lane.running--;
      const wake = lane.slotFreed;
      lane.slotFreed = undefined;
      wake?.();
      if (idle(lane) && lane.idleWaiters.length > 0) for (const resolve of lane.idleWaiters.splice(0)) resolve();
    };
  }

  #wait(waiter: Waiter, signal: AbortSignal | undefined): void {
    const { lane } = waiter;
    lane.waiting.add(waiter);
    const timer = setTimeout(() => {
      waiter.timer = undefined;
      lane.timedOut++;
      this.#cancel(waiter, new QueueTimeoutError(lane.name, Date.now() - waiter.enqueuedAt));
    }, lane.options.queueTimeoutMs);
    timer.unref?.();
    waiter.timer = timer;
    if (signal !== undefined) this.#listen(signal, waiter);
  }

  /** The waiter got its slot: stop its timer and its abort listening. */
  #start(waiter: Waiter): void {
    waiter.started = true;
    waiter.lane.running++;
    this.#forget(waiter);
  }

  /** Takes a waiting request out of its queue; it rejects with `reason` and never runs. */
  #cancel(waiter: Waiter, reason: unknown): void {
    if (waiter.started) return;
    this.#forget(waiter);
    // p-queue removes a queued task synchronously and rejects its promise with
    // the reason; the head of the line, already waiting for a slot, is woken
    // to see the abort and leave.
    waiter.controller.abort(reason);
    const lane = waiter.lane;
    const wake = lane.slotFreed;
    lane.slotFreed = undefined;
    wake?.();
    queueMicrotask(() => {
      if (idle(lane) && lane.idleWaiters.length > 0) for (const resolve of lane.idleWaiters.splice(0)) resolve();
    });
  }

  #forget(waiter: Waiter): void {
    if (waiter.timer !== undefined) {
      clearTimeout(waiter.timer);
      waiter.timer = undefined;
    }
    if (waiter.signal !== undefined) this.#unlisten(waiter.signal, waiter);
    waiter.lane.waiting.delete(waiter);
  }

  #listen(signal: AbortSignal, waiter: Waiter): void {
    let entry = this.#bySignal.get(signal);
    if (entry === undefined) {
      const waiters = new Set<Waiter>();
      const listener = () => {
        this.#bySignal.delete(signal);
        for (const each of [...waiters]) this.#cancel(each, signal.reason);
      };
      entry = { waiters, listener };
      this.#bySignal.set(signal, entry);
      signal.addEventListener('abort', listener, { once: true });
    }
    entry.waiters.add(waiter);
    waiter.signal = signal;
  }

  #unlisten(signal: AbortSignal, waiter: Waiter): void {
    waiter.signal = undefined;
    const entry = this.#bySignal.get(signal);
    if (entry === undefined) return;
    entry.waiters.delete(waiter);
    if (entry.waiters.size === 0) {
      this.#bySignal.delete(signal);
      signal.removeEventListener('abort', entry.listener);
    }
  }

  #refuse(lane: Lane, reason: 'full' | 'closed'): LaneRejection {
    lane.rejected++;
    const rejection: LaneRejection = {
      lane: lane.name,
      reason,
      running: lane.running,
      queued: queued(lane),
      concurrency: lane.options.concurrency,
      maxQueue: lane.options.maxQueue,
    };
    try {
      this.#onRejected?.({ ...rejection });
    } catch {
      // A listener that throws never breaks a request.
    }
    return rejection;
  }
}

/** Requests waiting in the lane: the line, its head included. */
function queued(lane: Lane): number {
  return lane.queue.size + lane.queue.pending;
}

function idle(lane: Lane): boolean {
  return lane.running === 0 && queued(lane) === 0;
}
