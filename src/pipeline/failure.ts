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
