/**
 * Kept for the paths that import it: the one header parser lives in
 * `resilience/headers.ts`, shared by the cooldown, the limiter and the store.
 */
export {
  exhaustedDimensions,
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
