/**
 * Options of `new KeyManager(options)`: their types (`options.ts`), their
 * defaults (`defaults.ts`, the one set), the checks every section shares
 * (`check.ts`, the one toolkit) and one validator per option family
 * (`sections/`). Everything is checked at construction: a malformed option
 * throws a {@link ConfigError} whose `field` names it.
 */
import { ConfigError } from '../errors';
import { checkBoolean, checkFields, describeType, isPlainObject, optionalNumber, own } from './check';
import { DEFAULTS } from './defaults';
import type { KeyManagerOptions, ResolvedOptions } from './options';
import { resolveBudgets } from './sections/budgets';
import { resolveCache } from './sections/cache';
import { resolveHooks } from './sections/hooks';
import { resolvePrices } from './sections/models';
import { resolveProviders } from './sections/providers';
import { resolveCircuitBreaker, resolveLaneOptions, resolveRateLimiting, resolveRetry, resolveStreamBounds, resolveTimeouts } from './sections/resilience';
import { resolveKeySelection, resolveAffinity, resolveRouting } from './sections/routing';
import { resolveFetch, resolveStore } from './sections/runtime';

export type * from './options';
export { DEFAULTS, DEFAULT_LANES } from './defaults';
export { resolveKey } from './sections/keys';

/** `maxDynamicModels`: a whole number of model names, 1 to a million. */
const DYNAMIC_MODELS = { min: 1, max: 1_000_000, integer: true, unit: 'model names' } as const;

const OPTION_FIELDS: Record<keyof KeyManagerOptions, true> = {
  providers: true,
  keySelection: true,
  retry: true,
  attemptTimeoutMs: true,
  deadlineMs: true,
  cooldownMs: true,
  prices: true,
  streamUsage: true,
  redactReplies: true,
  replyHeaders: true,
  maxDynamicModels: true,
  streamIdleTimeoutMs: true,
  streamDeadline: true,
  fetch: true,
  lanes: true,
  defaultLane: true,
  circuitBreaker: true,
  rateLimiting: true,
  routing: true,
  budgets: true,
  store: true,
  hooks: true,
  cache: true,
  affinity: true,
  responseAffinity: true,
};

/**
 * Validates `new KeyManager()` options and fills in {@link DEFAULTS}.
 * The result shares nothing mutable with the input.
 *
 * @throws {ConfigError} on the first malformed option; its `field` is the
 * option's path, e.g. `providers.openai.keys[1].weight`.
 */
export function resolveOptions(options: KeyManagerOptions): ResolvedOptions {
  const input: unknown = options;
  if (!isPlainObject(input)) throw new ConfigError('options', `expected an object such as { providers: { … } }; got ${describeType(input)}`);
  checkFields(input, OPTION_FIELDS, '', 'option');
  const providers = resolveProviders(own(input, 'providers'));
  const store = resolveStore(own(input, 'store'));
  return {
    providers,
    ...resolveLaneOptions(input),
    circuitBreaker: resolveCircuitBreaker(own(input, 'circuitBreaker')),
    rateLimiting: resolveRateLimiting(own(input, 'rateLimiting')),
    routing: resolveRouting(own(input, 'routing'), providers),
    budgets: resolveBudgets(own(input, 'budgets'), providers),
    keySelection: resolveKeySelection(own(input, 'keySelection')),
    retry: resolveRetry(own(input, 'retry')),
    ...resolveTimeouts(input),
    ...resolveStreamBounds(input),
    prices: resolvePrices(own(input, 'prices')),
    streamUsage: checkBoolean(own(input, 'streamUsage'), 'streamUsage', DEFAULTS.streamUsage),
    redactReplies: checkBoolean(own(input, 'redactReplies'), 'redactReplies', DEFAULTS.redactReplies),
    replyHeaders: checkBoolean(own(input, 'replyHeaders'), 'replyHeaders', DEFAULTS.replyHeaders),
    maxDynamicModels: optionalNumber(own(input, 'maxDynamicModels'), 'maxDynamicModels', DEFAULTS.maxDynamicModels, DYNAMIC_MODELS),
    fetch: resolveFetch(own(input, 'fetch')),
    store,
    hooks: resolveHooks(own(input, 'hooks')),
    cache: resolveCache(own(input, 'cache'), store),
    affinity: resolveAffinity(input),
  };
}
