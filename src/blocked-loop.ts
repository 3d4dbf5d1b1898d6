/**
 * Waits that tell a slow answer from a blocked event loop (a CPU-bound
 * handler, a long GC pause, a container throttled by its CPU quota, a loaded
 * machine). After a stall Node runs the timers due before it reads the
 * sockets whose data came meanwhile: a timer that fires late fired late
 * itself, and an answer may already be waiting. The Redis store's waits
 * (store/redis/timing.ts), the first store load (pipeline/store-sync.ts) and
 * the request's own timer (pipeline/abort.ts) judge by these rules.
 */
import { performance } from 'node:perf_hooks';

/** What {@link answerWithin} gives when the answer did not come in time. */
export const LATE: unique symbol = Symbol('late');

/** Below this, a timer firing late is ordinary jitter, not a blocked loop. */
export const JITTER_MS = 20;

/** How {@link answerWithin} waits, beyond its timeout. */
export interface WithinOptions {
  /** The longest it waits in all, however often the loop was blocked; default 8 × the timeout. */
  maxMs?: number;
  /** Whether its timer keeps the process alive (a wait the app awaits: `RedisStore.ready()`); default false. */
  keepAlive?: boolean;
}

/**
 * `promise`'s value, or {@link LATE} when it did not settle within `timeoutMs`
 * of this process's own time: when the timer fires late (the loop was
 * blocked) the wait starts again, up to `maxMs` in all; and when it fires,
 * replies that already arrived are read before deciding. Rejects as `promise` does.
 */
export function answerWithin<T>(promise: Promise<T>, timeoutMs: number, { maxMs = timeoutMs * 8, keepAlive = false }: WithinOptions = {}): Promise<T | typeof LATE> {
  return new Promise<T | typeof LATE>((resolve, reject) => {
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const started = performance.now();
    const finish = (then: () => void) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      then();
    };
    promise.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
    const arm = () => {
      const due = performance.now() + timeoutMs;
      timer = setTimeout(() => {
        const late = performance.now() - due;
        // After the poll phase: a reply already in the socket has been read by then.
        setImmediate(() => {
          if (settled) return;
          const blocked = late > Math.max(JITTER_MS, timeoutMs / 2);
          if (blocked && performance.now() - started < maxMs) arm();
          else finish(() => resolve(LATE));
        });
      }, timeoutMs);
      if (!keepAlive) timer.unref?.();
    };
    arm();
  });
}
