/**
 * The retry policy on its own: one row per outcome of DESIGN.md's outcome
 * table (and the rules around them: retry budget, free rotations, deadline,
 * a provider going last after two transient failures). A 2xx never reaches
 * the policy: the attempt loop returns it.
 */
import { describe, expect, test } from 'vitest';
import type { FailureKind } from '../../src/errors';
import type { Action } from '../../src/resilience/classify';
import { decide, type FailedAttempt, type RetryDecision, type RetryHistory } from '../../src/resilience/retry/policy';

const RULES = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 };
/** Math.random stand-in: 0 takes no jitter off. */
const NO_JITTER = () => 0;

function failed(kind: FailureKind, action: Action, extra: Partial<FailedAttempt> = {}): FailedAttempt {
  return { kind, action, retryAfterMs: undefined, firstTryOfKey: true, ...extra };
}
function history(extra: Partial<RetryHistory> = {}): RetryHistory {
  return { replayable: true, retriesUsed: 0, transientFailures: 0, providerTransientFailures: 0, now: 0, deadlineAt: 60_000, ...extra };
}

const SURFACE: RetryDecision = { action: 'surface' };

describe('decide', () => {
  test.each<[string, FailedAttempt, Partial<RetryHistory>, RetryDecision]>([
    // upstream answer                              what keyplex does
    ['400 context_length_exceeded, a larger-context fallback configured', failed('context_length', 'rotate'), {}, { action: 'rotate', consumesRetry: false }],
    ['400 context_length_exceeded, no fallback', failed('context_length', 'surface'), {}, SURFACE],
    ['other 400', failed('bad_request', 'surface'), {}, SURFACE],
    ['404', failed('not_found', 'surface'), {}, SURFACE],
    ['422', failed('bad_request', 'surface'), {}, SURFACE],
    ['401: rotate at once, free the first time per key', failed('unauthorized', 'rotate'), {}, { action: 'rotate', consumesRetry: false }],
    ['403: rotate at once', failed('forbidden', 'rotate'), {}, { action: 'rotate', consumesRetry: false }],
    ['429 rate limit: rotate at once, not waiting its Retry-After', failed('rate_limit', 'rotate', { retryAfterMs: 30_000 }), {}, { action: 'rotate', consumesRetry: false }],
    ['429 rate limit on a key tried before: a rotation that consumes a retry', failed('rate_limit', 'rotate', { firstTryOfKey: false }), {}, { action: 'rotate', consumesRetry: true }],
    ['429 insufficient_quota', failed('quota', 'rotate'), {}, { action: 'rotate', consumesRetry: false }],
    ['200 with a broken body', failed('invalid_response', 'retry'), { transientFailures: 1, providerTransientFailures: 1 }, { action: 'backoff', ms: 100, consumesRetry: true, avoidProvider: false }],
    ['408', failed('timeout', 'retry'), { transientFailures: 1, providerTransientFailures: 1 }, { action: 'backoff', ms: 100, consumesRetry: true, avoidProvider: false }],
    ['409', failed('conflict', 'retry'), { transientFailures: 2, providerTransientFailures: 1 }, { action: 'backoff', ms: 200, consumesRetry: true, avoidProvider: false }],
    ['5xx, the second on this provider: it goes last', failed('server_error', 'retry'), { transientFailures: 2, providerTransientFailures: 2 }, { action: 'backoff', ms: 200, consumesRetry: true, avoidProvider: true }],
    ['5xx with retry-after-ms: waits what the upstream asked', failed('server_error', 'retry', { retryAfterMs: 750 }), { transientFailures: 1, providerTransientFailures: 1 }, { action: 'backoff', ms: 750, consumesRetry: true, avoidProvider: false }],
    ['backoff is capped at maxDelayMs', failed('server_error', 'retry'), { transientFailures: 8, providerTransientFailures: 1 }, { action: 'backoff', ms: 1000, consumesRetry: true, avoidProvider: false }],
    ['connection reset', failed('connection', 'retry'), { transientFailures: 1, providerTransientFailures: 1 }, { action: 'backoff', ms: 100, consumesRetry: true, avoidProvider: false }],
    ['attempt timeout', failed('timeout', 'retry'), { transientFailures: 3, providerTransientFailures: 1 }, { action: 'backoff', ms: 400, consumesRetry: true, avoidProvider: false }],
    ['caller aborted: stop at once', failed('aborted', 'surface'), {}, SURFACE],
    ['a transient failure with no retry left', failed('server_error', 'retry'), { retriesUsed: 3, transientFailures: 1 }, SURFACE],
    ['even a free rotation needs a retry left', failed('rate_limit', 'rotate'), { retriesUsed: 3 }, SURFACE],
    ['a body that cannot be sent again is never retried', failed('server_error', 'retry'), { replayable: false, transientFailures: 1 }, SURFACE],
    ['nor rotated', failed('unauthorized', 'rotate'), { replayable: false }, SURFACE],
    ['a backoff that would end past the deadline surfaces', failed('server_error', 'retry', { retryAfterMs: 5_000 }), { now: 56_000, transientFailures: 1 }, SURFACE],
    ['a wait the upstream asked for past the deadline, another provider in the route: it holds only this provider', failed('server_error', 'retry', { retryAfterMs: 5_000 }), { now: 56_000, transientFailures: 1, providerTransientFailures: 1, otherProviders: true }, { action: 'backoff', ms: 5_000, consumesRetry: true, avoidProvider: false }],
    ['a computed backoff past the deadline surfaces even with another provider', failed('server_error', 'retry'), { now: 59_950, transientFailures: 1, otherProviders: true }, SURFACE],
    ['a rotation at the deadline surfaces', failed('rate_limit', 'rotate'), { now: 60_000 }, SURFACE],
    ['403/404 model_not_found, a key not tried yet left: rotate at once', failed('not_found', 'rotate'), { untriedKeys: true }, { action: 'rotate', consumesRetry: false }],
    ['403/404 model_not_found, every key tried or refusing the model: the answer is surfaced', failed('not_found', 'rotate'), { untriedKeys: false }, SURFACE],
  ])('%s', (_answer, outcome, past, expected) => {
    expect(decide(outcome, history(past), RULES, NO_JITTER)).toEqual(expected);
  });

  test('jitter takes up to its share off the delay, from the random source given', () => {
    const decision = decide(failed('server_error', 'retry'), history({ transientFailures: 1 }), RULES, () => 1);
    expect(decision).toEqual({ action: 'backoff', ms: 50, consumesRetry: true, avoidProvider: false });
  });
});
