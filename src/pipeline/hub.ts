/**
 * The typed event emitter the manager exposes (`on` / `once` / `off`) and the
 * stages emit on. A listener that throws never breaks a request: it is
 * guarded, and the first such error is reported once as a process warning.
 * Stages ask `wants(event)` before building a payload.
 */
import { EventEmitter } from 'eventemitter3';
import type { KeyplexEventName, KeyplexEvents, KeyplexListener } from '../events';

type EmitterEvents = { [E in KeyplexEventName]: [KeyplexEvents[E]] };
type AnyListener = (payload: never) => void;

export class EventHub {
  readonly #emitter = new EventEmitter<EmitterEvents>();
  readonly #guards = new WeakMap<AnyListener, AnyListener>();
  #warned = false;

  on<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): void {
    this.#emitter.on(event, this.#guard(listener) as never);
  }

  once<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): void {
    this.#emitter.once(event, this.#guard(listener) as never);
  }

  off<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): void {
    const guard = this.#guards.get(listener as AnyListener);
    if (guard) this.#emitter.off(event, guard as never);
  }

  /** True when someone listens: build the payload only then. */
  wants(event: KeyplexEventName): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  emit<E extends KeyplexEventName>(event: E, payload: KeyplexEvents[E]): void {
    (this.#emitter.emit as (event: E, payload: KeyplexEvents[E]) => boolean)(event, payload);
  }

  #guard<E extends KeyplexEventName>(listener: KeyplexListener<E>): (payload: KeyplexEvents[E]) => void {
    const key = listener as AnyListener;
    let guard = this.#guards.get(key);
    if (!guard) {
      guard = ((payload: KeyplexEvents[E]) => {
        try {
          const result: unknown = listener(payload);
          if (result instanceof Promise) result.catch((error: unknown) => this.#failed(error));
        } catch (error) {
          this.#failed(error);
        }
      }) as AnyListener;
      this.#guards.set(key, guard);
    }
    return guard as (payload: KeyplexEvents[E]) => void;
  }

  #failed(error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    const message = error instanceof Error ? error.message : String(error);
    process.emitWarning(`a keyplex event listener threw; the request went on (reported once): ${message}`, {
      code: 'KEYPLEX_LISTENER_ERROR',
    });
  }
}
