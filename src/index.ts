/**
 * keyplex: many API keys across many OpenAI-compatible providers as one
 * reliable, cost-aware client under the official `openai` SDK.
 *
 * Public exports only. Internal machinery (key state, the SSE tap, the
 * classifier) is left out on purpose so that it can change without a major
 * version.
 */
export { KeyManager } from './key-manager';
export type { WrappableClient } from './key-manager';

export { keyplex } from './request-options';
export type { KeyplexRequestOptions } from './request-options';
export { KEYPLEX_BASE_URL } from './request';
export { getKeyplexDetails, isKeyplexError, DETAIL_HEADER, REQUEST_ID_HEADER } from './details';

export type {
  KeyManagerOptions,
  ProviderOptions,
  KeyInput,
  RetryOptions,
  CircuitBreakerOptions,
  CircuitBreakerScopeOptions,
  RateLimitingOptions,
  AffinityOptions,
  ResponseAffinityOptions,
} from './config';

// The error contract (README "Errors"): a request's failures reach the app as
// the SDK's own classes (keyplex answers through the SDK), tested with
// `getKeyplexDetails(err).code` or `isKeyplexError(err, code)`. The classes
// exported are the ones an app can catch itself: `ConfigError` (options of
// `new KeyManager()` and key calls), `RequestOptionsError` (`keyplex.options()`),
// `MissingPeerError` (the first call of an entry whose optional peer is not
// installed: `keyplex/redis`, `keyplex/otel`, `keyplex/prometheus`,
// `keyplex/testing/msw`), and their base `KeyplexError`; and the errors that end
// a stream's loop after its first bytes reached the app (`StreamInterruptedError`,
// its `StreamStalledError`, and `DeadlineExceededError` when the request's
// deadline ends a stream); `StoreUnavailableError` (`RedisStore.ready()` given
// up on) and `ManagerClosedError` (a call on a closed manager).
export { KeyplexError, ConfigError, RequestOptionsError, MissingPeerError, StreamInterruptedError, StreamStalledError, DeadlineExceededError, StoreUnavailableError, ManagerClosedError } from './errors';
export type { KeyplexErrorCode, KeyplexErrorDetail, AttemptOutcome, FailureKind } from './errors';

export type {
  KeyplexEvents,
  KeyplexEventName,
  KeyplexListener,
  RequestEventBase,
  RequestEvent,
  AttemptEvent,
  RetryEvent,
  FailoverEvent,
  SuccessEvent,
  FailureEvent,
  KeyDisabledEvent,
  KeyDisabledReason,
  KeyCooldownEvent,
  KeyLimitsEvent,
  KeyRecoveredEvent,
  KeyAddedEvent,
  KeyRemovedEvent,
  CircuitEvent,
  LaneRejectedEvent,
  BudgetExceededEvent,
  StoreErrorEvent,
  StoreRecoveredEvent,
  StoreLostEvent,
  StoreLossCause,
  CacheHitEvent,
  CacheMissEvent,
} from './events';

// Hooks and the exact response cache (docs/hooks-and-cache.md).
export type {
  HooksOptions,
  HookEntry,
  HookStateBase,
  BeforeAttemptHook,
  BeforeAttemptState,
  AfterResponseHook,
  AfterResponseState,
} from './hooks/types';
export type { CacheOptions, CacheStats, CachePartitionInput } from './cache/types';

// ---------------------------------------------------------------------------
// Extension points (docs/extending.md): each a small interface with built-ins
// chosen by name; an object implementing it plugs in a custom one.
//   key selection   KeySelector        keySelection: 'headroom' | … | { select }
//   model routing   RoutingStrategy    routing.strategy / routing.perModel
//   auto routing    AutoStrategy       routing.auto.strategy
//   circuits        BreakerPolicy      circuitBreaker.{key,deployment}.policy: () => policy
//   lanes           LaneOptions        lanes: { name: { concurrency, maxQueue, queueTimeoutMs } }
//   pricing         ModelPrice         prices, models[name].price
//   state store     StateStore         store (MemoryStore, RedisStore from 'keyplex/redis', or yours)
// ---------------------------------------------------------------------------

export type { KeySelector, KeyView, SelectContext } from './keys/selector';
export type { KeySelectorName } from './keys/create-selector';
export { HeadroomSelector } from './keys/headroom';
export { RoundRobinSelector } from './keys/round-robin';
export { LeastUsedSelector } from './keys/least-used';
export { WeightedSelector } from './keys/weighted';
export { RandomSelector } from './keys/random';

export type { RoutingStrategy, RoutingStrategyName, DeploymentView, RouteContext } from './routing/strategy';
export type { AutoStrategy, RequestFeatures, ComplexityThresholds, CatalogueOptions } from './routing/catalogue/index';
export { ComplexityAutoStrategy } from './routing/catalogue/index';
export type { RoutingOptions, DeploymentOptions } from './config';

export type { CircuitOptions, CircuitSnapshot, CircuitState, BreakerPolicy, BreakerSpec, BreakerKind } from './resilience/breaker/index';
export type { LaneOptions, LaneStats } from './resilience/lanes/index';

export { DEFAULT_PRICES, PRICES_AS_OF } from './usage/pricing';
export type { ModelPrice } from './usage/pricing';

export { MemoryStore } from './store/memory';
export type { MemoryStoreOptions } from './store/memory';
export type * from './store/types';
export type { ObjectKind } from './routing/affinity';

export type { Usage } from './usage/usage';
export type { BudgetOptions, BudgetScope, BudgetWindow, BudgetMode, BudgetStats } from './usage/budget/index';
export type { KeyplexStats, ProviderStats, KeyStats, Counters } from './usage/stats';
