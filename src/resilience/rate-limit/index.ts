/**
 * Per-key rate limiting and pacing: ledger windows per dimension (requests
 * and tokens) with a capacity and a period, from configuration, from the
 * providers' headers, or from AIMD on 429s. Pure and deterministic: the clock
 * is injected and nothing waits.
 */
export { AimdEstimator, BLIP_RETRY_MS } from './aimd';
export { DEFAULT_OUTPUT_TOKENS, estimateInputTokens, estimateOutputTokens, estimateTokens } from './estimate';
export {
  exhaustedDimensions,
  KeyLimiter,
  type KeyLimiterOptions,
  type KeyLimits,
  type RateLimitSource,
  type Reservation,
  type ReserveResult,
} from './limiter';
export { DAY_MS, defaultScope, MINUTE_MS, resolveRateLimits, type RateLimitOptions, type RateLimitScope, type RateWindowOption, type ResolvedRateLimits } from './options';
export { DEFAULT_PERIOD_MS, PeriodLearner } from './period';
export { LimiterRegistry, type LimiterScopeOptions } from './registry';
export { LedgerWindow, MAX_COUNT_LAG_MS, type WindowSpec } from './window';
export {
  parseRateLimitHeaders,
  parseResetMs,
  parseRfc3339,
  RATE_LIMIT_CAPS,
  restAfterRateLimit,
  type RateLimitDimension,
  type RateLimitRest,
  type RateLimitSnapshot,
  type RateLimitWindow,
} from '../headers';
