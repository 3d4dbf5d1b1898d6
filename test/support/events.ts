/**
 * Event helpers for SDK-driven tests.
 */
import type { KeyManager, KeyplexEventName, KeyplexEvents } from '../../src/index';

/** Every `name` event the manager emits from now on, in order. */
export function record<E extends KeyplexEventName>(manager: KeyManager, name: E): KeyplexEvents[E][] {
  const seen: KeyplexEvents[E][] = [];
  manager.on(name, (payload) => void seen.push(payload));
  return seen;
}
