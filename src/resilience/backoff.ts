/**
 * Backoff delays and an abortable sleep. The sleep keeps the process alive on
 * purpose: a request waiting to retry is pending work, unlike a cooldown timer.
 */
import type { RetryOptions } from '../config';

/**
 * Delay before retry number `n` (1-based) after a transient failure:
 * `min(base · 2^(n−1), max)`, of which a `jitter` share is randomised downwards.
 */
export function backoffDelay(n: number, options: Required<RetryOptions>, random: () => number = Math.random): number {
  const raw = Math.min(options.baseDelayMs * 2 ** (n - 1), options.maxDelayMs);
  return Math.round(raw * (1 - options.jitter * random()));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
