/**
 * Loads `ioredis` on first use rather than at import: `keyplex/redis` then
 * imports without it, and a store that must make its own client says what is
 * missing and how to fix it, instead of Node's bare "Cannot find package".
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

/** The ioredis client class. */
export type RedisClass = typeof Redis;

/** What is thrown when ioredis is not installed. */
export const MISSING_IOREDIS =
  "keyplex/redis: RedisStore needs the optional peer dependency 'ioredis' (version 5 or 6), which is not installed. Run `npm install ioredis`, or pass a client of your own as `new RedisStore({ client })`.";

/** A `require` next to this module (CommonJS build: `__filename`; ES module build: `import.meta.url`). */
function localRequire(): (id: string) => unknown {
  return createRequire(typeof __filename === 'string' ? __filename : import.meta.url);
}

/**
 * The ioredis `Redis` class.
 * @throws {Error} with {@link MISSING_IOREDIS} when ioredis cannot be found.
 */
export function loadIoredis(load: (id: string) => unknown = localRequire()): RedisClass {
  try {
    return (load('ioredis') as { Redis: RedisClass }).Redis;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') throw new Error(MISSING_IOREDIS, { cause: error });
    throw error;
  }
}
