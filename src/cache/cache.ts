/**
 * The exact response cache (`cache` option): identical non-streaming JSON
 * requests within `ttlMs` answered without a call — from this manager's
 * memory or from its state store — only 2xx JSON answers kept, never shared
 * across partitions (tenants) unless configured. The pipeline looks a
 * request up before routing and stores the answer after accounting.
 */
import { REQUEST_ID_HEADER } from '../details';
import { untilAborted } from '../pipeline/abort';
import type { RequestContext } from '../pipeline/context';
import type { EventHub } from '../pipeline/hub';
import type { StateStore } from '../store/types';
import { cacheKeyOf } from './key';
import { Lru } from './lru';
import type { CachedAnswer, CacheStats, ResolvedCache } from './types';

/** Response header on an answer served from the cache. */
export const CACHE_HEADER = 'x-keyplex-cache';

/** Prefix of the cache's keys in a state store. */
const STORE_PREFIX = 'rc:';

function parseAnswer(raw: string | undefined): CachedAnswer | undefined {
  if (raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as CachedAnswer;
    return typeof value === 'object' && value !== null && typeof value.b === 'string' && typeof value.s === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}

export class ResponseCache {
  readonly #options: ResolvedCache;
  readonly #lru: Lru | undefined;
  readonly #store: StateStore | undefined;
  readonly #now: () => number;
  hits = 0;
  misses = 0;
  savedUsd = 0;

  constructor(options: ResolvedCache, store: StateStore | undefined, now: () => number = () => Date.now()) {
    this.#options = options;
    this.#store = options.store === 'store' ? store : undefined;
    this.#lru = this.#store === undefined ? new Lru(options.maxEntries, options.maxBytes) : undefined;
    this.#now = now;
  }

  /**
   * The cached answer to the request, or undefined (a miss, or not cacheable); sets `ctx.cacheKey` for a cacheable miss.
   * A hit says `x-keyplex-cache: hit`, and with `replyHeaders` carries keyplex's other reply headers too.
   */
  async lookup(ctx: RequestContext, hub: EventHub, signal: AbortSignal, replyHeaders: boolean): Promise<Response | undefined> {
    const key = cacheKeyOf(this.#options, ctx);
    if (key === undefined) return undefined;
    let raw: string | undefined;
    if (this.#lru) raw = this.#lru.get(key, this.#now());
    else {
      try {
        // A store that never answers holds the request no longer than its deadline (or caller, or close()).
        raw = (await untilAborted(this.#store!.cacheGet!(STORE_PREFIX + key), signal, () => undefined)) ?? undefined;
      } catch {
        raw = undefined; // A store that cannot answer is a miss.
      }
      if (signal.aborted) throw signal.reason;
    }
    const answer = parseAnswer(raw);
    const base = { requestId: ctx.requestId, tags: ctx.tags, metadata: ctx.metadata, model: ctx.request.model, path: ctx.request.path };
    if (answer === undefined) {
      this.misses++;
      ctx.cacheKey = key;
      if (hub.wants('cache:miss')) hub.emit('cache:miss', base);
      return undefined;
    }
    this.hits++;
    this.savedUsd += answer.c ?? 0;
    if (hub.wants('cache:hit')) hub.emit('cache:hit', { ...base, provider: answer.p, ageMs: Math.max(0, this.#now() - answer.a), savedUsd: answer.c });
    const headers = new Headers({ 'content-type': answer.t, [CACHE_HEADER]: 'hit' });
    if (replyHeaders) {
      headers.set(REQUEST_ID_HEADER, ctx.requestId);
      headers.set('x-keyplex-provider', answer.p);
      headers.set('x-keyplex-attempts', '0');
    }
    return new Response(answer.b, { status: answer.s, headers });
  }

  /** Keeps a 2xx JSON answer to a request that missed. */
  store(ctx: RequestContext, response: Response, body: string, provider: string, costUsd: number | null): void {
    const key = ctx.cacheKey;
    if (key === undefined || response.status < 200 || response.status > 299) return;
    const now = this.#now();
    const answer: CachedAnswer = { s: response.status, t: response.headers.get('content-type') ?? 'application/json', b: body, p: provider, c: costUsd, a: now };
    const raw = JSON.stringify(answer);
    if (this.#lru) this.#lru.set(key, raw, this.#options.ttlMs, now);
    else if (raw.length * 2 <= this.#options.maxBytes) {
      try {
        void Promise.resolve(this.#store!.cacheSet!(STORE_PREFIX + key, raw, this.#options.ttlMs)).catch(() => {});
      } catch {
        // A store that cannot take it: not cached.
      }
    }
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, savedUsd: this.savedUsd, entries: this.#lru?.size ?? 0, bytes: this.#lru?.bytes ?? 0 };
  }

  reset(): void {
    this.hits = 0;
    this.misses = 0;
    this.savedUsd = 0;
  }
}
