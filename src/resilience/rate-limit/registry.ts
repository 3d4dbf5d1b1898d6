/**
 * Which windows a request draws on: a key's own, a key × upstream model's
 * (OpenAI and Azure limit per model), or a quota group's (keys of one project
 * or account sharing one quota).
 */
import { KeyLimiter, type KeyLimiterOptions } from './limiter';
import type { RateLimitScope } from './options';

/** Where a key's windows live. */
export interface LimiterScopeOptions {
  /** `'model'`: per key (or group) × upstream model; `'key'`: one set for every model. */
  scope: RateLimitScope;
  /** Keys naming the same group share one set of windows. */
  quotaGroup?: string | undefined;
  /** The configured limits of the windows (the key's; for a group, the first key's to ask). */
  limits: KeyLimiterOptions;
}

/** A store name for a scope: the provider and a key id the store encodes whole. */
export interface ScopeRef {
  readonly provider: string;
  readonly keyId: string;
}

/** How many model windows one key or group keeps; the least recently used go beyond it (bounded memory). */
export const MAX_MODELS_PER_OWNER = 256;

/**
 * The limiters of a manager, by scope. A key's limiter under scope `'key'`
 * without a group is one object for its life; per-model limiters are made on
 * first use and at most {@link MAX_MODELS_PER_OWNER} are kept per key or
 * group (user-chosen model names cannot grow memory without bound).
 */
export class LimiterRegistry {
  readonly #now: () => number;
  readonly #adaptive: boolean;
  /** owner → model ('' for scope 'key') → limiter; Map order is recency. */
  readonly #owners = new Map<string, Map<string, KeyLimiter>>();

  constructor(options: { adaptive?: boolean } = {}, now: () => number = Date.now) {
    this.#now = now;
    this.#adaptive = options.adaptive ?? true;
  }

  /** The owner id of a key's windows: its group, else the key. */
  static owner(provider: string, keyId: string, quotaGroup: string | undefined): string {
    return quotaGroup === undefined ? `k\u0000${provider}\u0000${keyId}` : `g\u0000${quotaGroup}`;
  }

  /**
   * The store reference of a scope, for `StoreSession.reserve`: the key's own
   * ref for scope `'key'` without a group, else a ref naming the group and/or
   * the model, so replicas share the same window.
   */
  static ref(provider: string, keyId: string, upstreamModel: string | undefined, scope: LimiterScopeOptions): ScopeRef {
    const model = scope.scope === 'model' ? (upstreamModel ?? '') : '';
    if (scope.quotaGroup === undefined && model === '') return { provider, keyId };
    const owner = scope.quotaGroup === undefined ? keyId : `group:${scope.quotaGroup}`;
    return { provider: scope.quotaGroup === undefined ? provider : '', keyId: model === '' ? owner : `${owner}@${model}` };
  }

  /** The limiter a request for `upstreamModel` on this key draws on. */
  limiterFor(provider: string, keyId: string, upstreamModel: string | undefined, scope: LimiterScopeOptions): KeyLimiter {
    const owner = LimiterRegistry.owner(provider, keyId, scope.quotaGroup);
    const model = scope.scope === 'model' ? (upstreamModel ?? '') : '';
    let models = this.#owners.get(owner);
    if (models === undefined) {
      models = new Map();
      this.#owners.set(owner, models);
    }
    let limiter = models.get(model);
    if (limiter !== undefined) {
      if (models.size > 1) {
        models.delete(model);
        models.set(model, limiter);
      }
      return limiter;
    }
    limiter = new KeyLimiter({ adaptive: this.#adaptive, ...scope.limits }, this.#now);
    models.set(model, limiter);
    if (models.size > MAX_MODELS_PER_OWNER) models.delete(models.keys().next().value!);
    return limiter;
  }

  /** Every limiter of a key (all its models), or of its group. */
  limitersOf(provider: string, keyId: string, quotaGroup?: string): KeyLimiter[] {
    return [...(this.#owners.get(LimiterRegistry.owner(provider, keyId, quotaGroup))?.values() ?? [])];
  }

  /** Forgets what was learnt on every limiter of a key or its group (`enableKey`). */
  forget(provider: string, keyId: string, quotaGroup?: string): void {
    for (const limiter of this.limitersOf(provider, keyId, quotaGroup)) limiter.forget();
  }

  /** Drops a key's limiters (the key was removed; a group's stay for its other keys). */
  remove(provider: string, keyId: string): void {
    this.#owners.delete(LimiterRegistry.owner(provider, keyId, undefined));
  }
}
