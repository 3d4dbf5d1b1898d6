/**
 * The rate-limit header families of every provider shape keyplex knows: per
 * dimension, the names of a window's limit, remaining and reset, and the
 * period when the names state it. Data only; the reader is headers.ts (the
 * IETF `RateLimit` fields, which carry more than three values, are read by
 * ratelimit-fields.ts).
 */

/** The two dimensions a key is limited in. */
export type RateLimitDimension = 'requests' | 'tokens';

/** One family's header names (lower-case). */
export interface HeaderNames {
  readonly limit: string;
  readonly remaining: string;
  /** `''` when the family has no reset header (no header is named so). */
  readonly reset: string;
  /** The period the family's names state (`…-minute`, `…-day`). */
  readonly periodMs?: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const suffixed = (prefix: string, dimension: string, periodMs?: number): HeaderNames => ({
  limit: `${prefix}-limit-${dimension}`,
  remaining: `${prefix}-remaining-${dimension}`,
  reset: `${prefix}-reset-${dimension}`,
  periodMs,
});
const anthropic = (family: string): HeaderNames => ({
  limit: `anthropic-ratelimit-${family}-limit`,
  remaining: `anthropic-ratelimit-${family}-remaining`,
  reset: `anthropic-ratelimit-${family}-reset`,
});
/** Header families per dimension, every provider shape keyplex knows. */
export const FAMILIES: Record<RateLimitDimension, readonly HeaderNames[]> = {
  requests: [
    // OpenAI, Azure OpenAI, Groq (per day), DeepSeek-compatible gateways, Fireworks.
    suffixed('x-ratelimit', 'requests'),
    anthropic('requests'),
    // OpenRouter (`X-RateLimit-Reset` in epoch ms), Together and other gateways.
    { limit: 'x-ratelimit-limit', remaining: 'x-ratelimit-remaining', reset: 'x-ratelimit-reset' },
    // Cerebras: its requests per day.
    suffixed('x-ratelimit', 'requests-day', DAY_MS),
  ],
  tokens: [
    suffixed('x-ratelimit', 'tokens'),
    anthropic('tokens'),
    anthropic('input-tokens'),
    anthropic('output-tokens'),
    // Fireworks.
    suffixed('x-ratelimit', 'tokens-prompt'),
    suffixed('x-ratelimit', 'tokens-generated'),
    // Together.
    { limit: 'x-tokenlimit-limit', remaining: 'x-tokenlimit-remaining', reset: 'x-tokenlimit-reset' },
    // Cerebras: its tokens per minute.
    suffixed('x-ratelimit', 'tokens-minute', MINUTE_MS),
    // Mistral (tokens, "by size"): the window nearest its limit, and the per-minute one (its per-month one is not kept).
    { limit: 'ratelimitbysize-limit', remaining: 'ratelimitbysize-remaining', reset: 'ratelimitbysize-reset' },
    { limit: 'x-ratelimitbysize-limit-minute', remaining: 'x-ratelimitbysize-remaining-minute', reset: '', periodMs: MINUTE_MS },
  ],
};
