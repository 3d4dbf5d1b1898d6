/**
 * Per-key rate limiting and pacing: token buckets per dimension (requests and
 * tokens per minute) with limits from configuration, from `x-ratelimit-*` /
 * `anthropic-ratelimit-*` headers, or from AIMD on 429s. Pure and
 * deterministic: the clock is injected and nothing waits.
 */
export { AimdEstimator, type AimdState } from './aimd';
export { MINUTE_MS, TokenBucket, type TokenBucketState } from './bucket';
export { DEFAULT_OUTPUT_TOKENS, estimateInputTokens, estimateOutputTokens, estimateTokens } from './estimate';
export {
  exhaustedDimensions,
  KeyLimiter,
  type KeyLimiterOptions,
  type KeyLimiterState,
  type KeyLimits,
  type RateLimitSource,
  type Reservation,
  type ReserveResult,
} from './limiter';
export {
  parseRateLimitHeaders,
  parseResetMs,
  parseRfc3339,
  type RateLimitDimension,
  type RateLimitSnapshot,
  type RateLimitWindow,
} from './parse';
