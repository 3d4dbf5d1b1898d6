/**
 * The options of the Redis store and their checks.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { checkFields, describe, describeType, MS_POSITIVE, numberProblem } from '../../config/check';
import { ConfigError } from '../../errors';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * An ioredis client to use (the store adds a second connection for
   * pub/sub with `client.duplicate()`, and leaves the client open on close).
   * Give it `enableOfflineQueue: false`, so commands fail at once while Redis
   * is away instead of piling up. Default: the store makes its own from `url`.
   */
  client?: Redis;
  /** Where Redis is, for the store's own client. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** More ioredis options for the store's own client (TLS, password, db…). */
  redis?: RedisOptions;
  /** Prefix of every Redis key and channel, so several keyplex deployments can share one Redis. Default `'keyplex:'`. */
  prefix?: string;
  /**
   * When Redis cannot answer: `'open'` (default) keeps serving on each
   * process's own state (limits then hold per process, not together) and
   * resyncs when Redis is back; `'closed'` refuses requests that need a shared
   * reservation with `StoreUnavailableError` (503) until it is back.
   */
  failMode?: 'open' | 'closed';
  /**
   * How long a reservation may wait for Redis. Time this process's own event
   * loop was blocked does not count (a busy process is not a Redis outage),
   * and a reservation that runs out of time is followed by a PING: only when
   * that goes unanswered too is Redis declared away (`store:error`).
   * Default 250 ms.
   */
  timeoutMs?: number;
  /** While Redis is away, how often the store checks whether it is back. Default 500 ms. */
  retryMs?: number;
  /**
   * The clock the shared windows run on, in epoch ms. Default: Redis's own
   * `TIME`, one clock for every replica whatever their machines' clocks say.
   * Give one for tests with fake timers.
   */
  now?: () => number;
}


/** A duration option: > 0 and at most the longest timer (2^31 − 1 ms). */
export function positiveMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const problem = numberProblem(value, MS_POSITIVE);
  if (problem !== undefined) throw new ConfigError(name, `${problem} (new RedisStore())`);
  return value as number;
}

export function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // A transaction Redis discarded (EXECABORT): the reason is the refusal of a command it queued (OOM, NOPERM…), which ioredis keeps beside it.
  const queued = (error as { previousErrors?: unknown }).previousErrors;
  const first = Array.isArray(queued) ? queued.find((e): e is Error => e instanceof Error) : undefined;
  return first === undefined ? error.message : `${first.message} (${error.message})`;
}


const URL_EXAMPLE = '"redis://127.0.0.1:6379" (with a password: "redis://:password@host:6379"; TLS: "rediss://…"), or a Unix socket\'s path';

/**
 * `url` as ioredis reads it (a path starting with `/` is a socket; a string without `://` gets `redis://`), checked
 * here so that a malformed one fails naming the option, and without its text: it may hold Redis's password.
 */
function checkUrl(url: unknown): void {
  if (url === undefined || (typeof url === 'string' && url.startsWith('/'))) return;
  if (typeof url !== 'string') throw new ConfigError('url', `expected a string such as ${URL_EXAMPLE}; got ${describeType(url)} (new RedisStore())`);
  let protocol: string;
  try {
    protocol = new URL(url.includes('://') ? url : `redis://${url}`).protocol;
  } catch {
    throw new ConfigError('url', `expected a URL such as ${URL_EXAMPLE}; got ${describeType(url)} that is not a URL (new RedisStore(); a password with reserved characters must be percent-encoded)`);
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw new ConfigError('url', `expected a URL such as ${URL_EXAMPLE}; got a URL with protocol ${JSON.stringify(protocol)} (new RedisStore())`);
  }
}

const KNOWN: readonly (keyof RedisStoreOptions)[] = ['client', 'url', 'redis', 'prefix', 'failMode', 'timeoutMs', 'retryMs', 'now'];
/** ioredis's own connection options, which a user may put at the top instead of in `url` or `redis`. */
const IOREDIS = new Set(['host', 'port', 'path', 'username', 'password', 'db', 'tls', 'family', 'sentinels', 'name', 'lazyConnect']);

/** Refuses an option the store does not know (it would be ignored), naming it but never its value. */
function checkKnown(options: RedisStoreOptions): void {
  const unknown = Object.keys(options).find((name) => !(KNOWN as readonly string[]).includes(name));
  if (unknown === undefined) return;
  if (IOREDIS.has(unknown)) {
    throw new ConfigError(unknown, `expected one of ${KNOWN.join(', ')} (new RedisStore()); got ioredis's \`${unknown}\`, which goes in \`url\` ("redis://:password@host:6379/0") or under \`redis\` ({ redis: { ${unknown} } })`);
  }
  checkFields(options as Record<string, unknown>, KNOWN, '', 'RedisStore option');
}

/** The options a store runs on, checked. @throws ConfigError (code `invalid_config`, `field` the option) for a malformed one. */
export function checkOptions(options: RedisStoreOptions) {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', `expected an object such as { url: 'redis://127.0.0.1:6379' }; got ${describeType(options)} (new RedisStore())`);
  const failMode = options.failMode ?? 'open';
  if (failMode !== 'open' && failMode !== 'closed') throw new ConfigError('failMode', `expected 'open' or 'closed'; got ${describe(failMode)} (new RedisStore())`);
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || options.prefix === '')) {
    throw new ConfigError('prefix', `expected a non-empty string such as 'keyplex:'; got ${describe(options.prefix)} (new RedisStore())`);
  }
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new ConfigError('now', `expected a function returning epoch ms; got ${describeType(options.now)} (new RedisStore())`);
  }
  if (options.client === undefined) checkUrl(options.url);
  const timeoutMs = positiveMs(options.timeoutMs, 'timeoutMs', 250);
  const retryMs = positiveMs(options.retryMs, 'retryMs', 500);
  checkKnown(options);
  return {
    prefix: options.prefix ?? 'keyplex:',
    failMode,
    timeoutMs,
    retryMs,
    now: options.now,
  };
}

export type { ReadyOptions } from './ready';
