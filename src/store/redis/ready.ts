/**
 * Waiting for a RedisStore to be ready (`RedisStore.ready()`), bounded: a
 * start-up awaiting a Redis that is unreachable or refuses the store is told
 * why, with Redis's own reason, instead of waiting for ever.
 */
import { MS_NON_NEGATIVE, numberProblem } from '../../config/check';
import { ConfigError, StoreUnavailableError } from '../../errors';
import { answerWithin, LATE } from './timing';

/** How long `ready()` waits when not told: long enough for Redis to start beside the app, short enough to fail a start-up that cannot work. */
export const READY_TIMEOUT_MS = 10_000;

/** How long {@link RedisStore.ready} waits. */
export interface ReadyOptions {
  /**
   * Milliseconds to wait for Redis before rejecting; default 10,000.
   * `Infinity` waits until Redis answers (as `ready()` did before); `0`
   * checks without waiting.
   */
  timeoutMs?: number;
  /** Rejects the wait when aborted (the store keeps trying). */
  signal?: AbortSignal;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** The callers of `ready()` waiting; settled together when the store is ready or closed, each rejected alone when its time is up or its signal aborts. */
export class ReadyWaiters {
  readonly #waiters = new Set<Waiter>();

  /** Resolves every waiter. */
  settle(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.resolve();
  }

  /** @param why - why the store is not ready: the failure it reported (Redis's reason), if any. */
  wait(options: ReadyOptions, why: () => string | undefined): Promise<void> {
    const timeoutMs = checkTimeout(options.timeoutMs);
    const { signal } = options;
    const unready = (cause: unknown, after: string) =>
      new StoreUnavailableError(
        `keyplex: the Redis state store was not ready ${after} (${why() ?? 'Redis has not answered yet'}); it keeps trying in the background. Check Redis's address and the store's ACL user (docs/replicas.md), or wait longer with ready({ timeoutMs }).`,
        { cause },
      );
    if (signal?.aborted) return Promise.reject(unready(signal.reason, 'before the wait was aborted'));
    if (timeoutMs === 0) return Promise.reject(unready(undefined, 'when checked (timeoutMs 0)'));
    let timedOut!: () => void;
    const waiting = new Promise<void>((resolve, reject) => {
      const onAbort = () => end(unready(signal?.reason, 'when the wait was aborted'));
      const end = (error?: Error) => {
        this.#waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve();
      };
      const waiter: Waiter = { resolve: () => end(), reject: end };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      timedOut = () => end(unready(undefined, `within ${timeoutMs} ms`));
    });
    if (timeoutMs === Infinity) return waiting;
    // Timed as the store's own waits are (timing.ts): the time a blocked loop (a start-up's) took does not count, and what Redis answered meanwhile is read first.
    answerWithin(waiting, timeoutMs, { keepAlive: true }).then(
      (got) => got === LATE && timedOut(),
      () => undefined,
    );
    return waiting;
  }
}

function checkTimeout(timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return READY_TIMEOUT_MS;
  if (timeoutMs === Infinity) return timeoutMs;
  const problem = numberProblem(timeoutMs, MS_NON_NEGATIVE);
  if (problem !== undefined) throw new ConfigError('timeoutMs', `${problem}, or Infinity to wait until Redis answers (RedisStore.ready())`);
  return timeoutMs;
}
