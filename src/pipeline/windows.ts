/**
 * Which rate-limit windows a key's requests draw on: the key's own, per key ×
 * upstream model (OpenAI, Azure: the default for their base URLs), or a quota
 * group's shared by several keys; and how the state store names them.
 */
import type { ResolvedKey } from '../config';
import type { KeyWindow, KeyWindows } from '../keys/key';
import { KeyLimiter, LimiterRegistry, type LimiterScopeOptions } from '../resilience/rate-limit/index';
import { MAX_MODELS_PER_OWNER } from '../resilience/rate-limit/registry';
import { keyRateLimits } from '../resilience/rate-limit/options';
import type { Core } from './core';

/**
 * A new key's own limiter and its windows per upstream model. The key's
 * windows replace its provider's per dimension (also for keys added with
 * `addKey`). Scope `'key'` without a group: the key's own limiter for every
 * model (no lookup per pick). With a group, the key's own limiter is the
 * group's (stats and headroom show what the key can still send).
 */
export function keyWindows(core: Core, provider: string, resolved: ResolvedKey): { limiter: KeyLimiter; windows: KeyWindows } {
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
  const own: KeyWindow = { limiter, ref: LimiterRegistry.ref(provider, keyId, undefined, scope) };
  const forget = () => {
    limiter.forget();
    registry.forget(provider, keyId, scope.quotaGroup);
  };
  if (scope.scope === 'key') return { limiter, windows: { for: () => own, forget } };
  // One KeyWindow per model, made again only when the registry made a new limiter (it keeps a bounded number).
  const made = new Map<string, KeyWindow>();
  const byModel = (upstreamModel: string | undefined): KeyWindow => {
    if (upstreamModel === undefined) return own;
    const modelLimiter = registry.limiterFor(provider, keyId, upstreamModel, scope);
    let window = made.get(upstreamModel);
    if (window?.limiter !== modelLimiter) {
      window = { limiter: modelLimiter, ref: LimiterRegistry.ref(provider, keyId, upstreamModel, scope) };
      made.set(upstreamModel, window);
      if (made.size > MAX_MODELS_PER_OWNER) made.delete(made.keys().next().value!);
    }
    return window;
  };
  return { limiter, windows: { for: byModel, forget, models: () => made.entries() } };
}
