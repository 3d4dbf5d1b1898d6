/**
 * The options of the Redis store and their checks.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { MS_POSITIVE, numberProblem } from '../../config/check';

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
  if (problem !== undefined) throw new TypeError(`RedisStore: \`${name}\`: ${problem}`);
  return value as number;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

