/** `cache`: the exact response cache (src/cache/). */
import type { ResolvedCache } from '../../cache/types';
import { ConfigError } from '../../errors';
import type { StateStore } from '../../store/types';
import { checkFields, checkNumber, describe, describeType, isPlainObject, MS_POSITIVE, optionalNumber, own } from '../check';

const FIELDS = ['ttlMs', 'maxEntries', 'maxBytes', 'store', 'partitionBy'];
const DEFAULT_MAX_ENTRIES = 1_000;
const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

/** `cache`, or `undefined` when it is off. `store` is the manager's resolved state store. */
export function resolveCache(raw: unknown, store: StateStore | undefined): ResolvedCache | undefined {
  if (raw === undefined || raw === false) return undefined;
  if (!isPlainObject(raw)) throw new ConfigError('cache', `expected an object { ttlMs, maxEntries?, maxBytes?, store?, partitionBy? }; got ${describeType(raw)}`);
  checkFields(raw, FIELDS, 'cache', 'cache option');
  const ttlMs = checkNumber(own(raw, 'ttlMs'), 'cache.ttlMs', MS_POSITIVE);
  const maxEntries = optionalNumber(own(raw, 'maxEntries'), 'cache.maxEntries', DEFAULT_MAX_ENTRIES, { min: 1, max: 10_000_000, integer: true });
  const maxBytes = optionalNumber(own(raw, 'maxBytes'), 'cache.maxBytes', DEFAULT_MAX_BYTES, { min: 1024, max: 16 * 1024 ** 3, integer: true, unit: 'bytes' });
  const where = own(raw, 'store') ?? 'memory';
  if (where !== 'memory' && where !== 'store') throw new ConfigError('cache.store', `expected 'memory' or 'store' (the manager's state store); got ${describe(where)}`);
  if (where === 'store' && (typeof store?.cacheGet !== 'function' || typeof store.cacheSet !== 'function')) {
    throw new ConfigError(
      'cache.store',
      `'store' keeps answers in the manager's state store, which must implement cacheGet() and cacheSet(); ${store === undefined ? 'no `store` is configured' : 'the configured `store` does not'}. Give a MemoryStore or a RedisStore as \`store\`, or use 'memory'`,
    );
  }
  const partitionBy = own(raw, 'partitionBy') ?? 'tenant';
  if (typeof partitionBy !== 'function' && partitionBy !== 'tenant' && partitionBy !== 'tags' && partitionBy !== 'none') {
    throw new ConfigError('cache.partitionBy', `expected 'tenant', 'tags', 'none' or a function (request) => string; got ${describe(partitionBy)}`);
  }
  return { ttlMs, maxEntries, maxBytes, store: where, partitionBy: partitionBy as ResolvedCache['partitionBy'] };
}
