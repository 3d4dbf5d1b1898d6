/** What the manager runs on: its `store` and its `fetch`. */
import { ConfigError } from '../../errors';
import type { StateStore } from '../../store/types';
import { describeType } from '../check';

/** `store`: a state store (anything with an `open()` method), or `undefined` for a private memory store. */
export function resolveStore(raw: unknown): StateStore | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || typeof (raw as { open?: unknown }).open !== 'function') {
    throw new ConfigError('store', `expected a state store (a MemoryStore, a RedisStore from 'keyplex/redis', or an object with an open() method); got ${describeType(raw)}`);
  }
  return raw as StateStore;
}

/** `fetch`: a fetch-compatible function, or `undefined` for the global one looked up at call time. */
export function resolveFetch(raw: unknown): typeof globalThis.fetch | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'function') throw new ConfigError('fetch', `expected a fetch-compatible function; got ${describeType(raw)}`);
  return raw as typeof globalThis.fetch;
}
