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
export { getKeyplexDetails, DETAIL_HEADER, REQUEST_ID_HEADER } from './details';

export type { KeyManagerOptions, ProviderOptions, KeyInput, RetryOptions } from './config';

export {
  KeyplexError,
  ConfigError,
  BudgetExceededError,
  LaneFullError,
  QueueTimeoutError,
  UnknownLaneError,
  ModelNotServedError,
  NoKeyAvailableError,
  DeadlineExceededError,
  UpstreamError,
  StreamInterruptedError,
  RequestOptionsError,
  ManagerClosedError,
  StoreUnavailableError,
} from './errors';
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
  KeyRecoveredEvent,
  KeyAddedEvent,
  KeyRemovedEvent,
  CircuitEvent,
  LaneRejectedEvent,
  BudgetExceededEvent,
  StoreErrorEvent,
  StoreRecoveredEvent,
} from './events';

export type { CircuitOptions, CircuitSnapshot, CircuitState } from './resilience/breaker/index';

export { MemoryStore } from './store/memory';
export type { MemoryStoreOptions } from './store/memory';
export type * from './store/types';

export type { KeySelector, KeyView, SelectContext } from './keys/selector';
export type { KeySelectorName } from './keys/create-selector';
export { HeadroomSelector } from './keys/headroom';
export { RoundRobinSelector } from './keys/round-robin';
export { LeastUsedSelector } from './keys/least-used';
export { WeightedSelector } from './keys/weighted';
export { RandomSelector } from './keys/random';

export type { Usage } from './usage/usage';
export type { BudgetOptions, BudgetScope, BudgetWindow, BudgetStats } from './usage/budget';
export type { RoutingStrategy, RoutingStrategyName, DeploymentView, RouteContext } from './routing/strategy';
export type { AutoStrategy, RequestFeatures } from './routing/catalogue';
export { ComplexityAutoStrategy } from './routing/catalogue';
export type { RoutingOptions, DeploymentOptions } from './config';
export { DEFAULT_PRICES, PRICES_AS_OF } from './usage/pricing';
export type { ModelPrice } from './usage/pricing';
export type { KeyplexStats, ProviderStats, KeyStats, Counters } from './usage/stats';
