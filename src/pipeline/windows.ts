/**
 * Which rate-limit windows a key's requests draw on: the key's own, per key ×
 * upstream model (OpenAI, Azure: the default for their base URLs), or a quota
 * group's shared by several keys; and how the state store names them.
 */
import type { ResolvedKey } from '../config';
import type { KeyWindow, KeyWindows } from '../keys/key';
import { KeyLimiter, LimiterRegistry, type LimiterScopeOptions } from '../resilience/rate-limit/index';
import type { ScopeRef } from '../resilience/rate-limit/registry';
import { MAX_MODELS_PER_OWNER } from '../resilience/rate-limit/registry';
import { keyRateLimits } from '../resilience/rate-limit/options';
import type { Core } from './core';

/**
 * A new key's own limiter and its windows per upstream model. The key's
 * windows replace its provider's per dimension (also for keys added with
 * `addKey`). Scope `'key'` without a group: no windows object, the key
 * itself is the window of every model (no lookup per pick, nothing per key). With a group, the key's own limiter is the
 * group's (stats and headroom show what the key can still send).
 */
export function keyWindows(core: Core, provider: string, resolved: ResolvedKey): { limiter: KeyLimiter; windows: KeyWindows | undefined } {
  const { adaptive, coldStart } = core.options.rateLimiting;
  const providerRate = core.options.providers.find((p) => p.id === provider)?.rate;
  const rate = providerRate === undefined ? resolved.rate : keyRateLimits(providerRate, resolved.rate);
  const scope: LimiterScopeOptions = {
    scope: rate.scope ?? 'key',
    quotaGroup: rate.quotaGroup,
    limits: { requests: rate.requests, tokens: rate.tokens, adaptive, probe: coldStart === 'probe' },
  };
  const registry = core.limiters;
  const keyId = resolved.id;
  const limiter = scope.quotaGroup === undefined ? new KeyLimiter(scope.limits) : registry.limiterFor(provider, keyId, undefined, { ...scope, scope: 'key' });
  if (scope.scope === 'key' && scope.quotaGroup === undefined) return { limiter, windows: undefined };
  const ref = LimiterRegistry.ref(provider, keyId, undefined, scope);
  return { limiter, windows: scope.scope === 'key' ? new OwnWindows(registry, provider, keyId, scope.quotaGroup, limiter, ref) : new ModelWindows(registry, provider, keyId, scope, limiter, ref) };
}

/**
 * A key's own limiter for every model (no lookup per pick); it is the key's
 * own window too (no object more per key). Classes, not closures: thousands
 * of keys share the methods.
 */
class OwnWindows implements KeyWindows, KeyWindow {
  constructor(
    protected readonly registry: LimiterRegistry,
    protected readonly provider: string,
    protected readonly keyId: string,
    protected readonly quotaGroup: string | undefined,
    readonly limiter: KeyLimiter,
    readonly ref: ScopeRef,
  ) {}

  for(_upstreamModel: string | undefined): KeyWindow {
    return this;
  }

  forget(): void {
    this.limiter.forget();
    this.registry.forget(this.provider, this.keyId, this.quotaGroup);
  }
}

/** Windows per upstream model: one KeyWindow per model, made again only when the registry made a new limiter (it keeps a bounded number). */
class ModelWindows extends OwnWindows {
  readonly #scope: LimiterScopeOptions;
  #made: Map<string, KeyWindow> | undefined;

  constructor(registry: LimiterRegistry, provider: string, keyId: string, scope: LimiterScopeOptions, limiter: KeyLimiter, ref: ScopeRef) {
    super(registry, provider, keyId, scope.quotaGroup, limiter, ref);
    this.#scope = scope;
  }

  override for(upstreamModel: string | undefined): KeyWindow {
    if (upstreamModel === undefined) return this;
    const modelLimiter = this.registry.limiterFor(this.provider, this.keyId, upstreamModel, this.#scope);
    const made = (this.#made ??= new Map());
    let window = made.get(upstreamModel);
    if (window?.limiter !== modelLimiter) {
      window = { limiter: modelLimiter, ref: LimiterRegistry.ref(this.provider, this.keyId, upstreamModel, this.#scope) };
      made.set(upstreamModel, window);
      if (made.size > MAX_MODELS_PER_OWNER) made.delete(made.keys().next().value!);
    }
    return window;
  }

  models(): Iterable<[string, KeyWindow]> {
    return this.#made?.entries() ?? [];
  }
}
