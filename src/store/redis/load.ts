/**
 * Loads `ioredis` on first use rather than at import (through the shared peer
 * loader, `src/peer.ts`): `keyplex/redis` then imports without it, and a store
 * that must make its own client throws a `MissingPeerError` saying what
 * is missing and how to fix it, instead of Node's bare "Cannot find package".
 */
import type { Redis, RedisOptions } from 'ioredis';
import { loadPeer, type PeerRequire, type PeerUse } from '../../peer';
import type { RedisStoreOptions } from './options';

/** The ioredis client class. */
export type RedisClass = typeof Redis;

/** Who needs ioredis, for the error's message. */
const USE: PeerUse = { entry: 'keyplex/redis', needs: 'RedisStore', otherwise: 'pass a client of your own as `new RedisStore({ client })`' };

/**
 * The ioredis `Redis` class.
 * @param load how to load ioredis; default Node's `require`.
 * @throws {MissingPeerError} when ioredis is not installed;
 *   ioredis's own error, unchanged, when it is installed but fails to load.
 */
export function loadIoredis(load?: PeerRequire): RedisClass {
  return loadPeer<{ Redis: RedisClass }>('ioredis', USE, load).Redis;
}

/**
 * The store's own client, from `url` and `redis`: commands fail at once while
 * Redis is away (no offline queue), one retry, reconnects within a second.
 */
export function ownClient(options: RedisStoreOptions): Redis {
  const own: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
    ...options.redis,
  };
  const RedisClient = loadIoredis();
  return options.url === undefined ? new RedisClient(own) : new RedisClient(options.url, own);
}
