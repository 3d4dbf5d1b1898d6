/**
 * Timeouts that tell a slow Redis from a slow process. A reply that comes
 * "late" because this process's event loop was busy (a CPU-bound handler, a
 * loaded machine) is not Redis's fault: the timer that would declare it late
 * fires late itself, or the reply is already waiting in the socket when it
 * fires. Only a wait that ran out while the loop was free counts.
 */
import { answerWithin, LATE } from '../../blocked-loop';

// The blocked-loop rules live in blocked-loop.ts; the store's modules take them from here.
export { answerWithin, LATE, type WithinOptions } from '../../blocked-loop';

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
