/**
 * Timeouts that tell a slow Redis from a slow process. A reply that comes
 * "late" because this process's event loop was busy (a CPU-bound handler, a
 * loaded machine) is not Redis's fault: the timer that would declare it late
 * fires late itself, or the reply is already waiting in the socket when it
 * fires. Only a wait that ran out while the loop was free counts.
 */
import { performance } from 'node:perf_hooks';

/** What {@link answerWithin} gives when the answer did not come in time. */
export const LATE: unique symbol = Symbol('late');

/** Below this, a timer firing late is ordinary jitter, not a blocked loop. */
const JITTER_MS = 20;

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

/** What {@link Patience} needs of a connection. */
export interface Pingable {
  readonly status: string;
  ping(): Promise<unknown>;
}

/** One connection's answers within `timeoutMs`, telling a slow Redis from a slow process. */
export class Patience {
  readonly #client: Pingable;
  readonly #timeoutMs: number;
  /** A PING asking whether Redis is there, shared by the calls that ran out of time meanwhile. */
  #aliveCheck: Promise<boolean> | undefined;

  constructor(client: Pingable, timeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  /** `promise`'s value within `timeoutMs` (blocked-loop time aside), else a rejection. */
  async answer<T>(promise: Promise<T>, what: string): Promise<T> {
    const reply = await answerWithin(promise, this.#timeoutMs);
    if (reply === LATE) throw new Error(`Redis did not answer ${what} within ${this.#timeoutMs} ms`);
    return reply;
  }

  /**
   * A command ran out of time with this process's loop free: Redis is away
   * only if a PING goes unanswered too. When Redis answers the PING (sent on
   * the same connection, so answered after the command) the command's reply is in.
   */
  async late<T>(call: Promise<T>, what: string): Promise<T> {
    if (await this.#alive()) return this.answer(call, what);
    throw new Error(`Redis did not answer ${what} within ${this.#timeoutMs} ms`);
  }

  /** Whether Redis answers a PING in time; one PING at a time, shared by whoever asks meanwhile. */
  #alive(): Promise<boolean> {
    if (this.#aliveCheck === undefined) {
      const check = (async () => {
        if (this.#client.status !== 'ready') return false;
        try {
          return (await answerWithin(this.#client.ping(), this.#timeoutMs)) !== LATE;
        } catch {
          return false;
        }
      })();
      this.#aliveCheck = check;
      void check.then(() => {
        if (this.#aliveCheck === check) this.#aliveCheck = undefined;
      });
    }
    return this.#aliveCheck;
  }
}
