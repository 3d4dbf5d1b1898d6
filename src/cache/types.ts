/** Options, stats and the stored shape of the exact response cache (`cache` option). */

/** What a `partitionBy` function sees of a request. */
export interface CachePartitionInput {
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string | number | boolean>>;
  readonly model: string | undefined;
  readonly path: string;
}

/** `cache` of `new KeyManager()`: identical non-streaming JSON requests answered from a cache within `ttlMs`. */
export interface CacheOptions {
  /** How long an answer is served from the cache, ms: above 0, at most 2^31 − 1. Required. */
  ttlMs: number;
  /** Entries kept (in this process's memory): an integer from 1 to 10,000,000. Default 1,000. */
  maxEntries?: number;
  /** Bytes kept, about (key and body text): from 1 KiB to 16 GiB. Default 32 MiB. An answer larger than this is not cached. */
  maxBytes?: number;
  /**
   * Where answers are kept: `'memory'` (default) in this manager; `'store'`
   * in the manager's state store (`store` option), which must implement
   * `cacheGet`/`cacheSet` — `MemoryStore` and `RedisStore` do — so that
   * managers and replicas sharing it share the cache.
   */
  store?: 'memory' | 'store';
  /**
   * Which requests may share answers, besides being identical. Default
   * `'tenant'`: only requests with the same `tags` (in any order) and the same
   * `metadata` (`keyplex.options`). `'tags'`: the same tags, whatever the
   * metadata. `'none'`: every caller shares (only for prompts that hold
   * nothing private). A function: requests whose partition string is equal;
   * one that throws or returns no string fails the request (`hook_failed`).
   */
  partitionBy?: 'tenant' | 'tags' | 'none' | ((request: CachePartitionInput) => string);
}

/** `cache` after validation. */
export interface ResolvedCache {
  ttlMs: number;
  maxEntries: number;
  maxBytes: number;
  store: 'memory' | 'store';
  partitionBy: 'tenant' | 'tags' | 'none' | ((request: CachePartitionInput) => string);
}

/** `stats().cache`, when the cache is on. */
export interface CacheStats {
  /** Requests answered from the cache. */
  hits: number;
  /** Cacheable requests that were not in it. */
  misses: number;
  /** What the hits would have cost, USD (the cost of the answers they repeated, when priced). */
  savedUsd: number;
  /** Entries and bytes held now (memory cache; 0 for a store-backed one). */
  entries: number;
  bytes: number;
}

/** An answer as cached. */
export interface CachedAnswer {
  /** Status (2xx). */
  s: number;
  /** Content type. */
  t: string;
  /** Body text. */
  b: string;
  /** Provider that answered. */
  p: string;
  /** Its cost, USD; null when unknown. */
  c: number | null;
  /** When it was stored, epoch ms. */
  a: number;
}
