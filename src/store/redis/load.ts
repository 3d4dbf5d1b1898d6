/**
 * Loads `ioredis` on first use rather than at import (through the shared peer
 * loader, `src/peer.ts`): `keyplex/redis` then imports without it, and a store
 * that must make its own client throws a `MissingPeerError` saying what
 * is missing and how to fix it, instead of Node's bare "Cannot find package".
 */
import type { Redis } from 'ioredis';
import { loadPeer, type PeerRequire, type PeerUse } from '../../peer';

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
