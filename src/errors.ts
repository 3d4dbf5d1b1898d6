/**
 * keyplex's own errors. Every error has a stable `code` that is safe to switch
 * on; messages say what was wrong and what to do, and never contain a key.
 *
 * The contract, from the app's side (README "Errors"):
 * - a request's failure reaches the app as the SDK's own class for its status
 *   (keyplex answers the SDK over HTTP: 429 → `RateLimitError`, 503/504 →
 *   `InternalServerError`, ...), with a message that starts `keyplex:` and says
 *   what the attempts met and what to do; only the caller's own abort
 *   (`APIUserAbortError`) and a stream broken after its first bytes (thrown
 *   while iterating) take other shapes;
 * - the app tests `getKeyplexDetails(err)?.code` or `isKeyplexError(err, code)`,
 *   which work on the SDK's errors; `instanceof` works only for the classes
 *   keyplex throws itself: {@link ConfigError} (manager options, key calls),
 *   {@link RequestOptionsError} (`keyplex.options()`) and
 *   {@link MissingPeerError} (an entry whose optional peer is not installed),
 *   which the package exports with the errors that end a stream's loop. The
 *   other classes here carry the detail inside keyplex.
 */

const MARKER = Symbol.for('keyplex.error');

/** Every `code` a {@link KeyplexError} can carry. */
export type KeyplexErrorCode =
  | 'invalid_config'
  | 'invalid_request_options'
  | 'model_not_served'
  | 'context_length_exceeded'
  | 'no_key_available'
  | 'response_key_unavailable'
  | 'objects_on_different_keys'
  | 'deadline_exceeded'
  | 'upstream_error'
  | 'stream_interrupted'
  | 'stream_idle_timeout'
  | 'malformed_response'
  | 'aborted'
  | 'manager_closed'
  | 'lane_full'
  | 'queue_timeout'
  | 'unknown_lane'
  | 'budget_exceeded'
  | 'store_unavailable'
  | 'hook_failed'
  | 'missing_peer';

/** How one attempt of a request ended; part of an error's detail and of events. */
export interface AttemptOutcome {
  /** 1-based attempt number within the request. */
  attempt: number;
  provider: string;
  keyId: string;
  /** The upstream model name sent on this attempt. */
  upstreamModel: string | undefined;
  /** HTTP status of the upstream answer, or `undefined` when none arrived. */
  status: number | undefined;
  /** The outcome's class, see {@link FailureKind}; `'success'` for a 2xx. */
  kind: FailureKind | 'success';
  latencyMs: number;
}

/**
 * The class of a failed attempt, as in DESIGN.md's outcome table.
 * Stats count failures by these names.
 */
export type FailureKind =
  | 'rate_limit'
  | 'quota'
  | 'unauthorized'
  | 'forbidden'
  | 'bad_request'
  | 'context_length'
  | 'not_found'
  | 'redirect'
  | 'timeout'
  | 'conflict'
  | 'server_error'
  | 'connection'
  | 'invalid_response'
  | 'stream_interrupted'
  | 'aborted';

/** keyplex's detail on a failed request, reachable from any error it caused. */
export interface KeyplexErrorDetail {
  code: KeyplexErrorCode;
  message: string;
  requestId?: string | undefined;
  /** Every attempt made, in order. */
  attempts: AttemptOutcome[];
  /** When no key was usable: how long until one is expected to be. */
  retryAfterMs?: number | undefined;
  /** HTTP status of the final upstream answer, when there was one. */
  status?: number | undefined;
}

/** Base class of every keyplex error. */
export class KeyplexError extends Error {
  /** Stable, machine-readable code. */
  readonly code: KeyplexErrorCode;
  readonly requestId: string | undefined;
  readonly attempts: AttemptOutcome[];
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(
    code: KeyplexErrorCode,
    message: string,
    options: {
      cause?: unknown;
      requestId?: string | undefined;
      attempts?: AttemptOutcome[];
      retryAfterMs?: number | undefined;
      status?: number | undefined;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeyplexError';
    this.code = code;
    this.requestId = options.requestId;
    this.attempts = options.attempts ?? [];
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    Object.defineProperty(this, MARKER, { value: true });
  }

  /**
   * True for a keyplex error object, also one from another copy of the
   * package. The SDK raises its own classes for what keyplex answers: to test
   * those, use `isKeyplexError(err, code?)` or `getKeyplexDetails(err)`.
   */
  static is(value: unknown): value is KeyplexError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }

  /** The plain detail object (what {@link getKeyplexDetails} returns). */
  toDetail(): KeyplexErrorDetail {
    return {
      code: this.code,
      message: this.message,
      requestId: this.requestId,
      attempts: this.attempts,
      retryAfterMs: this.retryAfterMs,
      status: this.status,
    };
  }
}

/** Bad options given to `new KeyManager()` or a runtime key call; `field` names the option. */
export class ConfigError extends KeyplexError {
  /** Path of the offending option, e.g. `providers.openai.keys[2].weight`. */
  readonly field: string;
  constructor(field: string, problem: string) {
    super('invalid_config', `Invalid keyplex option \`${field}\`: ${problem}`);
    this.name = 'ConfigError';
    this.field = field;
  }
}

/** No configured provider serves the requested model (or none the request is pinned to: `message` says so). */
export class ModelNotServedError extends KeyplexError {
  readonly model: string;
  constructor(model: string, requestId?: string, message?: string) {
    message ??= `keyplex: no provider serves model '${model}'. Add it to a provider's \`models\`, or set \`serveAnyModel: true\` on a provider that serves any model (e.g. a gateway).`;
    super('model_not_served', message, { requestId, status: 404 });
    this.name = 'ModelNotServedError';
    this.model = model;
  }
}

/** Every key that could serve the request is cooling down or disabled. */
export class NoKeyAvailableError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; retryAfterMs?: number | undefined }) {
    super('no_key_available', message, { ...options, status: options.retryAfterMs === undefined ? 503 : 429 });
    this.name = 'NoKeyAvailableError';
  }
}

/** A request names a response, file, batch, conversation or upload (`previous_response_id`, `input_file_id`, `/files/{id}`…) created with a key now removed or disabled: only that key's project knows it, so nothing is sent. Status 404. The code keeps its first name (responses only); the message names the object. */
export class ResponseKeyUnavailableError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[] }) {
    super('response_key_unavailable', message, { ...options, status: 404 });
    this.name = 'ResponseKeyUnavailableError';
  }
}

/**
 * The request's total deadline passed before an answer arrived. Answered with
 * status 504 (the SDK raises `InternalServerError`); `summary` says what the
 * attempts met, e.g. `tried 1 key of 'one' in 2 attempts (2 × 503 server_error)`.
 */
export class DeadlineExceededError extends KeyplexError {
  constructor(deadlineMs: number, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown; summary?: string }) {
    const { summary, ...rest } = options;
    const met = summary ? `; ${summary}` : ` after ${options.attempts?.length ?? 0} attempt(s)`;
    super(
      'deadline_exceeded',
      `keyplex: the request's deadline of ${deadlineMs} ms passed before an answer arrived${met}. Raise \`deadlineMs\` (manager or request option) if the work needs longer.`,
      { ...rest, status: 504 },
    );
    this.name = 'DeadlineExceededError';
  }
}

/**
 * The final attempt failed without an HTTP answer: answered with status 502
 * (connection failed or reset) or 504 (attempt timeout), so the SDK raises
 * `InternalServerError` with this message.
 */
export class UpstreamError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown; status?: number }) {
    super('upstream_error', message, options);
    this.name = 'UpstreamError';
  }
}

/** A stream failed after its first bytes had reached the caller; nothing is replayed. */
export class StreamInterruptedError extends KeyplexError {
  constructor(
    options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown },
    code: 'stream_interrupted' | 'stream_idle_timeout' | 'malformed_response' = 'stream_interrupted',
    message = 'keyplex: the upstream stream failed after data had reached the caller; it is not replayed. Retry the request if a partial answer is not enough.',
  ) {
    super(code, message, options);
    this.name = 'StreamInterruptedError';
  }
}

/**
 * A stream sent no data for `streamIdleTimeoutMs` after its first bytes had
 * reached the caller (SSE comments such as `: ping` do not count as data):
 * keyplex ended it. A {@link StreamInterruptedError} with code `stream_idle_timeout`.
 */
export class StreamStalledError extends StreamInterruptedError {
  /** The idle timeout that ran out, ms. */
  readonly idleTimeoutMs: number;
  constructor(idleTimeoutMs: number, options: { requestId?: string; attempts?: AttemptOutcome[] }) {
    super(
      options,
      'stream_idle_timeout',
      `keyplex: the upstream stream sent no data for ${idleTimeoutMs} ms after data had reached the caller, so keyplex ended it; it is not replayed. Retry the request, or raise \`streamIdleTimeoutMs\` if this model pauses longer between chunks.`,
    );
    this.name = 'StreamStalledError';
    this.idleTimeoutMs = idleTimeoutMs;
  }
}

/** The per-request options given to `keyplex.options()` are malformed. */
export class RequestOptionsError extends KeyplexError {
  /** @param options.status set when the request went through the SDK (400: it raises `BadRequestError`). */
  constructor(field: string, problem: string, options: { requestId?: string; status?: number } = {}) {
    super('invalid_request_options', `Invalid keyplex request option \`${field}\`: ${problem}`, options);
    this.name = 'RequestOptionsError';
  }
}

/** The manager was closed; it takes no new requests. Answered with status 503 (the SDK raises `InternalServerError`). */
export class ManagerClosedError extends KeyplexError {
  /**
   * @param options.inFlight - the request was under way (queued, being sent, or a stream being read) when `close()`
   *   ended it, rather than made after: the message then says so, and how to let such requests finish.
   */
  constructor(options: { requestId?: string; attempts?: AttemptOutcome[]; inFlight?: boolean } = {}) {
    const { inFlight, ...rest } = options;
    const message = inFlight
      ? 'keyplex: close() ended this request while it was under way (queued, being sent or streaming); close({ drain: true }) lets requests under way finish first.'
      : 'keyplex: this KeyManager was closed; create a new one to send more requests.';
    super('manager_closed', message, { ...rest, status: 503 });
    this.name = 'ManagerClosedError';
  }
}

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

/**
 * A `beforeAttempt` or `afterResponse` hook threw or rejected, so the
 * request failed (it is not retried on another key: the hook would most
 * likely throw again). Answered with status 500 (the SDK raises
 * `InternalServerError`); the message quotes the hook's own, and `cause` is
 * what the hook threw.
 */
export class HookFailedError extends KeyplexError {
  /** Which hook: `beforeAttempt[0]`, `afterResponse[1]`, …, or strategy: `RoutingStrategy.order`, `AutoStrategy.choose`. */
  readonly hook: string;
  constructor(hook: string, message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown }) {
    super('hook_failed', message, { ...options, status: 500 });
    this.name = 'HookFailedError';
    this.hook = hook;
  }
}

/**
 * An entry point needs an optional peer dependency that is not installed:
 * thrown at the first call that needs it (importing the entry works without
 * it). `packageName` is what to install, `entry` the keyplex entry that
 * needs it; the message gives the install command. Thrown by `new
 * RedisStore()` without `client` (`ioredis`), `instrument()` of `keyplex/otel`
 * (`@opentelemetry/api`), `registerKeyplexMetrics()` of `keyplex/prometheus`
 * (`prom-client`) and `simulatorHandlers()` of `keyplex/testing/msw` (`msw`).
 *
 * Only "this very package cannot be found" becomes this error: a peer that is
 * installed but fails to load (a file or dependency of its own missing, a
 * syntax error) throws its own error unchanged, which names the real fault.
 *
 * Each entry is bundled with its own copy of keyplex's errors, so
 * `instanceof MissingPeerError` is answered by the error's `code` (and
 * keyplex's marker), not by its prototype: it holds for an error thrown by
 * `keyplex/otel` and tested against the class imported from `keyplex`.
 *
 * ```ts
 * import { MissingPeerError } from 'keyplex';
 * import { instrument } from 'keyplex/otel';
 * try { instrument(manager); }
 * catch (err) { if (err instanceof MissingPeerError) console.warn(`tracing off: ${err.message}`); else throw err; }
 * ```
 */
export class MissingPeerError extends KeyplexError {
  /** The npm package that is missing, e.g. `@opentelemetry/api`. */
  readonly packageName: string;
  /** The keyplex entry point that needs it, e.g. `keyplex/otel`. */
  readonly entry: string;
  /** What installs it: `npm install <packageName>`. */
  readonly installCommand: string;
  /**
   * @param use.needs what needs the package, e.g. `instrument()`.
   * @param use.otherwise another way out, added to the message (e.g. passing a client of one's own).
   */
  constructor(packageName: string, use: { entry: string; needs: string; otherwise?: string | undefined }, options: { cause?: unknown } = {}) {
    const installCommand = `npm install ${packageName}`;
    const otherwise = use.otherwise === undefined ? '' : `, or ${use.otherwise}`;
    super(
      'missing_peer',
      `${use.entry}: ${use.needs} needs the optional peer dependency '${packageName}', which is not installed. Run \`${installCommand}\`${otherwise}.`,
      options,
    );
    this.name = 'MissingPeerError';
    this.packageName = packageName;
    this.entry = use.entry;
    this.installCommand = installCommand;
  }

  /** Any keyplex error with code `missing_peer`, from whichever copy of keyplex's bundles threw it. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return KeyplexError.is(value) && value.code === 'missing_peer';
  }
}
