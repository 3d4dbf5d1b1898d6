/**
 * The errors of admission: a bulkhead lane full, a wait in it too long, a
 * lane unknown, a spend cap that would be crossed, a shared store that
 * fails closed. Each refuses the request before anything is sent.
 */

import { KeyplexError, type AttemptOutcome } from './base';

/**
 * A bulkhead lane's queue was full, so the request was shed at once instead of
 * waiting (load shedding). Carries the lane's load when it was refused.
 * Answers with status 429: the producer sends faster than the lane drains.
 */
export class LaneFullError extends KeyplexError {
  /** The lane that refused the request. */
  readonly lane: string;
  /** Requests of the lane running when it refused. */
  readonly running: number;
  /** Requests of the lane waiting when it refused. */
  readonly queued: number;
  /** The lane's `concurrency`. */
  readonly concurrency: number;
  /** The lane's `maxQueue`. */
  readonly maxQueue: number;
  constructor(lane: string, load: { running: number; queued: number; concurrency: number; maxQueue: number }, options: { requestId?: string } = {}) {
    super(
      'lane_full',
      `keyplex: lane '${lane}' is full: ${load.running} running, ${load.queued} queued (concurrency ${load.concurrency}, maxQueue ${load.maxQueue}); raise ${laneOption(lane, 'maxQueue')} or ${laneOption(lane, 'concurrency')}, or slow the producer.`,
      { ...options, status: 429 },
    );
    this.name = 'LaneFullError';
    this.lane = lane;
    this.running = load.running;
    this.queued = load.queued;
    this.concurrency = load.concurrency;
    this.maxQueue = load.maxQueue;
  }
}

/**
 * A request waited in its bulkhead lane's queue longer than the lane's
 * `queueTimeoutMs` and was dropped without being sent. Answers with status 503.
 */
export class QueueTimeoutError extends KeyplexError {
  /** The lane the request waited in. */
  readonly lane: string;
  /** How long the request waited, ms. */
  readonly waitedMs: number;
  constructor(lane: string, waitedMs: number, options: { requestId?: string } = {}) {
    super(
      'queue_timeout',
      `keyplex: the request waited ${waitedMs} ms in lane '${lane}' without getting a slot and was dropped unsent; raise ${laneOption(lane, 'concurrency')} or ${laneOption(lane, 'queueTimeoutMs')}, or send less work to this lane.`,
      { ...options, status: 503 },
    );
    this.name = 'QueueTimeoutError';
    this.lane = lane;
    this.waitedMs = waitedMs;
  }
}

/** A request named a bulkhead lane that is not configured. Answers with status 400. */
export class UnknownLaneError extends KeyplexError {
  /** The lane the request named. */
  readonly lane: string;
  /** The configured lanes. */
  readonly lanes: readonly string[];
  constructor(lane: string, lanes: readonly string[], options: { requestId?: string } = {}) {
    super(
      'unknown_lane',
      `keyplex: unknown lane '${lane}'; the configured lanes are ${lanes.map((name) => `'${name}'`).join(', ') || '(none)'}. Use one of them, or add '${lane}' under \`lanes\`.`,
      { ...options, status: 400 },
    );
    this.name = 'UnknownLaneError';
    this.lane = lane;
    this.lanes = [...lanes];
  }
}

/** The option path of one lane's setting, e.g. `lanes.batch.maxQueue` or `lanes["my lane"].maxQueue`. */
function laneOption(lane: string, option: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(lane) ? `lanes.${lane}.${option}` : `lanes[${JSON.stringify(lane)}].${option}`;
}

/**
 * A spend cap (a budget with `onExceeded: 'reject'`, the default) would be
 * crossed by the request, so it was refused before anything was sent.
 * Answers with status 429, so the SDK raises its `RateLimitError`;
 * `retryAfterMs` is the time until the cap's window frees enough spend
 * (a calendar window's reset, or enough of a rolling window's spend expiring).
 */
export class BudgetExceededError extends KeyplexError {
  /** The budget's id, e.g. `model:gpt-4.1/day`. */
  readonly budget: string;
  /** The cap, USD. */
  readonly limitUsd: number;
  /** Spend recorded in the budget's current window when the request was refused, USD. */
  readonly spentUsd: number;
  /** Estimates of requests in flight held against the budget, USD. */
  readonly heldUsd: number;
  /** What the refused request was estimated to cost, USD (its prompt as estimated and its output allowance); undefined when not given. */
  readonly estimateUsd: number | undefined;
  /** The budget's window. */
  readonly window: 'minute' | 'hour' | 'day' | 'month';
  /** Time until the window frees enough spend for the request, ms (also the base class's `retryAfterMs`). */
  declare readonly retryAfterMs: number;
  constructor(
    budget: string,
    detail: {
      limitUsd: number;
      spentUsd: number;
      heldUsd?: number;
      estimateUsd?: number;
      window: 'minute' | 'hour' | 'day' | 'month';
      mode?: 'calendar' | 'rolling';
      retryAfterMs: number;
    },
    options: { requestId?: string; attempts?: AttemptOutcome[] } = {},
  ) {
    const retryAfterMs = Math.max(0, Math.ceil(detail.retryAfterMs));
    const heldUsd = detail.heldUsd ?? 0;
    const held = heldUsd > 0 ? ` (+${usd(heldUsd)} held by requests in flight)` : '';
    const frees = detail.mode === 'rolling' ? 'enough of it leaves the rolling window in' : 'the window resets in';
    // The request's own estimate, when known: a first request can be refused with nothing spent yet.
    const adds = detail.estimateUsd === undefined ? '' : `this request's estimated ${usd(detail.estimateUsd)} on top of `;
    // A request whose estimate alone passes the cap never fits, however long it waits.
    const alone = detail.estimateUsd !== undefined && detail.estimateUsd > detail.limitUsd;
    const advice = alone ? `the request alone is estimated above the cap, so waiting will not help. Raise its \`limitUsd\`, lower the request's output allowance (max tokens),` : `${frees} ${duration(retryAfterMs)}. Raise its \`limitUsd\`, wait until then,`;
    const message = `keyplex: budget '${budget}' would be exceeded: ${adds}${usd(detail.spentUsd)} spent${held} of its ${usd(detail.limitUsd)} per-${detail.window} cap; ${advice} or set \`onExceeded: 'cheaper'\` to route to cheaper deployments instead of failing.`;
    super('budget_exceeded', message, { ...options, retryAfterMs, status: 429 });
    this.name = 'BudgetExceededError';
    this.budget = budget;
    this.limitUsd = detail.limitUsd;
    this.spentUsd = detail.spentUsd;
    this.heldUsd = heldUsd;
    this.estimateUsd = detail.estimateUsd;
    this.window = detail.window;
  }
}

/** `$1.25` for amounts from a dollar up, `$0.0123` below. */
function usd(amount: number): string {
  return `$${amount.toFixed(Math.abs(amount) >= 1 ? 2 : 4)}`;
}

/** `850 ms`, `42 s`, `12 min 5 s`, `3 h 20 min`, `4 d 6 h`. */
function duration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  const s = Math.ceil(ms / 1_000);
  if (s < 60) return `${s} s`;
  if (s < 3_600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const m = Math.ceil(s / 60);
  if (m < 1_440) return `${Math.floor(m / 60)} h ${m % 60} min`;
  const h = Math.ceil(m / 60);
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** The shared state store (Redis) could not answer and fails closed, so a request that needed a shared reservation was refused. Status 503. */
export class StoreUnavailableError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; cause?: unknown } = {}) {
    super('store_unavailable', message, { ...options, status: 503 });
    this.name = 'StoreUnavailableError';
  }
}
