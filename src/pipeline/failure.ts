/** What ends an attempt without a success, as the attempt loop and respond see it. */
import type { AttemptOutcome, FailureKind } from '../errors';
import type { Action, Classification } from '../resilience/classify';
import type { FailedAttempt } from '../resilience/retry/policy';
import type { BufferedAnswer } from './context';

/** Marks an attempt ended by its own timeout or the request's deadline (not the caller). */
export class AttemptTimeout extends Error {}

/** The manager's `fetch` option answered something that is not a Response: a mistake in it, which no retry mends. */
export class FetchOptionError extends Error {}

/** An attempt that did not succeed; carries what the retry policy and respond need. */
export class AttemptFailure extends Error implements FailedAttempt {
  constructor(
    readonly outcome: AttemptOutcome,
    readonly classification: Classification,
    /** The upstream answer, buffered, when there was one (to pass on if this is the last attempt). */
    readonly response: BufferedAnswer | undefined,
    /** The wait the upstream asked for, if any. */
    readonly retryAfterMs: number | undefined,
    /** True when this key had not been tried before in this request (a free rotation). */
    readonly firstTryOfKey: boolean,
    /** Transient failures of this attempt's provider in the request so far (this one included). */
    readonly providerTransientFailures: number,
    cause?: unknown,
  ) {
    super(`attempt ${outcome.attempt} failed: ${outcome.kind}`, cause === undefined ? undefined : { cause });
  }

  get kind(): FailureKind {
    return this.classification.kind;
  }

  get action(): Action {
    return this.classification.action;
  }
}

/** One read of a reply body's stream. */
export type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

/** Error codes in words that stand for a 429 (OpenAI's, in stream error events and failed responses). */
const RATE_LIMIT_CODES = new Set(['rate_limit_exceeded', 'insufficient_quota']);
/**
 * Error codes in words (a failed Responses answer's) that name the request
 * itself: its prompt, or a policy it breaks; with the image ones (an image
 * in the input: `invalid_image`, `image_too_large`, ...). No other key or
 * provider would answer it otherwise, and it says nothing of their health.
 */
const REQUEST_CODES = new Set(['invalid_prompt', 'bio_policy', 'misalignment_policy_violation']);

/**
 * The status an error named by its `type` alone (no `code`) stands for:
 * Anthropic's kinds, in its streams' `event: error` (its OpenAI-compatible
 * endpoint's too), as its replies of those statuses are typed.
 */
const TYPE_STATUS = new Map([
  ['rate_limit_error', 429],
  ['invalid_request_error', 400],
  ['overloaded_error', 529],
  ['api_error', 500],
]);

/**
 * The status an error a 200 carried (in its JSON body, in its stream) stands
 * for: its `code` when that is one (OpenRouter's are), 429 when it names a
 * rate limit or quota, 400 when it names the request itself; with no `code`,
 * the status its `type` names (Anthropic's `rate_limit_error`,
 * `invalid_request_error`, `overloaded_error`); else 502.
 */
export function embeddedStatus(error: Record<string, unknown>): number {
  const code = error.code;
  if (typeof code === 'string') return RATE_LIMIT_CODES.has(code) ? 429 : REQUEST_CODES.has(code) || code.includes('image') ? 400 : 502;
  if (typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599) return code;
  return (code === undefined || code === null) && typeof error.type === 'string' ? (TYPE_STATUS.get(error.type) ?? 502) : 502;
}
