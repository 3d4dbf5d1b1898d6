/**
 * The retry policy: what follows a failed attempt. Pure — everything it needs
 * comes in (the outcome, the request's history so far, the rules, a clock
 * reading and a random source), so it is table-tested on its own
 * (test/resilience/retry-policy.test.ts). The pipeline's attempt loop
 * (src/pipeline/pipeline.ts) follows its decisions.
 */
import type { RetryOptions } from '../../config';
import type { FailureKind } from '../../errors';
import { backoffDelay } from '../backoff';
import type { Action } from '../classify';

/** A failed attempt, as the policy sees it. */
export interface FailedAttempt {
  kind: FailureKind;
  /** What the outcome table says (src/resilience/classify.ts). */
  action: Action;
  /** The wait the upstream asked for (`retry-after-ms`, `retry-after`), if any. */
  retryAfterMs: number | undefined;
  /** True when the key had not been tried before in this request. */
  firstTryOfKey: boolean;
}

/** The request so far. */
export interface RetryHistory {
  /** Whether the request body can be sent again (a consumed stream body cannot). */
  replayable: boolean;
  /** Retries consumed so far (free rotations do not consume one). */
  retriesUsed: number;
  /** Transient failures (`retry` action) so far, this one included. */
  transientFailures: number;
  /** Transient failures of this attempt's provider so far, this one included. */
  providerTransientFailures: number;
  /** Now and the request's deadline, in the same clock (ms). */
  now: number;
  deadlineAt: number;
  /** Whether the request's route holds a provider besides this attempt's (a wait the upstream asked for holds only its provider). */
  otherProviders?: boolean;
  /** After a key said it cannot use the model: whether the route holds a key not tried yet that has not said so (undefined: not asked). */
  untriedKeys?: boolean;
}

/** The next step after a failed attempt. */
export type RetryDecision =
  /** Give the caller this answer (or error) now. */
  | { readonly action: 'surface' }
  /** The key is at fault: try again at once on another key. */
  | { readonly action: 'rotate'; readonly consumesRetry: boolean }
  /** Transient: wait `ms`, then try again, preferring another key or deployment. */
  | { readonly action: 'backoff'; readonly ms: number; readonly consumesRetry: true; readonly avoidProvider: boolean };

const SURFACE: RetryDecision = Object.freeze({ action: 'surface' });

/** Transient failures of one provider in one request after which its other deployments and keys go last. */
export const AVOID_PROVIDER_AFTER = 2;

/**
 * What follows `failed`, given `history`:
 * - an answer for the caller (`surface` action) is surfaced;
 * - with no retry left (`maxAttempts − 1` per replayable request, none for a
 *   body that cannot be sent again) anything is surfaced;
 * - moving away from a key the provider rate-limited or rejected (`rotate`)
 *   is free the first time per key, and waits nothing; after a key said it
 *   cannot use the model, only while a key not tried yet is left;
 * - a transient failure waits what the upstream asked for, else the backoff
 *   for the request's count of transient failures, and after
 *   {@link AVOID_PROVIDER_AFTER} of them on one provider that provider goes last;
 * - a wait that would end past the deadline surfaces instead, unless the
 *   upstream asked for it and the route has another provider (the wait holds
 *   only the provider that asked: another may serve at once).
 */
export function decide(
  failed: FailedAttempt,
  history: RetryHistory,
  rules: Required<RetryOptions>,
  random: () => number = Math.random,
): RetryDecision {
  if (failed.action === 'surface') return SURFACE;
  const retries = history.replayable ? rules.maxAttempts - 1 : 0;
  if (history.retriesUsed >= retries) return SURFACE;
  if (failed.action === 'rotate') {
    if (history.now >= history.deadlineAt || history.untriedKeys === false) return SURFACE;
    return { action: 'rotate', consumesRetry: !failed.firstTryOfKey };
  }
  const ms = failed.retryAfterMs ?? backoffDelay(history.transientFailures, rules, random);
  if (history.now + ms >= history.deadlineAt && !(failed.retryAfterMs !== undefined && history.otherProviders === true && history.now < history.deadlineAt)) return SURFACE;
  return { action: 'backoff', ms, consumesRetry: true, avoidProvider: history.providerTransientFailures >= AVOID_PROVIDER_AFTER };
}
