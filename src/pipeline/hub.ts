/**
 * The typed event emitter the manager exposes (`on` / `once` / `off`) and the
 * stages emit on. A listener that throws never breaks a request: it is
 * guarded, and the first such error is reported once as a process warning.
 * Stages ask `wants(event)` before building a payload.
 */
import { EventEmitter } from 'eventemitter3';
import type { KeyplexEventName, KeyplexEvents, KeyplexListener } from '../events';
import { suggest } from '../config/check';

/** Every event name, for JavaScript callers (the compiler checks TypeScript's): the object makes the list complete. */
const EVENT_NAMES = Object.keys({
  request: true, attempt: true, retry: true, failover: true, success: true, failure: true,
  'key:cooldown': true, 'key:disabled': true, 'key:recovered': true, 'key:limits': true, 'key:added': true, 'key:removed': true,
  'circuit:open': true, 'circuit:half-open': true, 'circuit:close': true, 'lane:rejected': true, 'budget:exceeded': true,
  'store:error': true, 'store:recovered': true, 'store:lost': true, 'cache:hit': true, 'cache:miss': true,
  'background:settled': true,
} satisfies Record<KeyplexEventName, true>);

/** Unknown names warned about already in this process: once each. */
const warnedNames = new Set<string>();

/**
 * Checks what `on()` / `once()` got from a caller the compiler did not check:
 * a listener that is not a function throws (as Node's emitters do); an event
 * keyplex never emits warns once (`KEYPLEX_UNKNOWN_EVENT`), as the listener would wait in silence.
 */
function checkListener(event: string, listener: unknown): void {
  if (typeof listener !== 'function') throw new TypeError(`keyplex: the listener of '${String(event)}' must be a function; got ${listener === null ? 'null' : typeof listener}`);
  if (EVENT_NAMES.includes(event) || warnedNames.has(event)) return;
  warnedNames.add(event);
  // A typo, or the name without its family (`cooldown` for `key:cooldown`).
  const meant = suggest(event, EVENT_NAMES) ?? EVENT_NAMES.find((name) => name.endsWith(`:${event}`));
  process.emitWarning(
    `keyplex emits no event '${event}', so this listener is never called${meant === undefined ? '' : ` (did you mean '${meant}'?)`}; its events are ${EVENT_NAMES.map((e) => `'${e}'`).join(', ')}.`,
    { code: 'KEYPLEX_UNKNOWN_EVENT' },
  );
}

type EmitterEvents = { [E in KeyplexEventName]: [KeyplexEvents[E]] };
type AnyListener = (payload: never) => void;

export class EventHub {
  readonly #emitter = new EventEmitter<EmitterEvents>();
  readonly #guards = new WeakMap<AnyListener, AnyListener>();
  #warned = false;

  on<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): void {
    checkListener(event, listener);
    this.#emitter.on(event, this.#guard(listener) as never);
  }

  once<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): void {
    checkListener(event, listener);
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
