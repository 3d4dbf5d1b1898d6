/**
 * One parser for every provider's headers: the cooldown (`rateLimitResetMs`)
 * and the limiter (`KeyLimiter.rateLimited`) agree on every case.
 */
import { describe, expect, test } from 'vitest';
import { rateLimitResetMs, parseRateLimitHeaders } from '../../src/resilience/headers';
import { classifyStatus, keyRejection } from '../../src/resilience/classify';
import { KeyLimiter } from '../../src/resilience/rate-limit';

const NOW = Date.parse('2025-01-01T00:00:00Z');
const at = (ms: number) => new Date(NOW + ms).toISOString().replace('.000Z', 'Z');

/** [provider, a 429's headers, the rest both must agree on (ms), the learnt limits]. */
const CASES: [string, Record<string, string>, number, { rpm?: number; tpm?: number }][] = [
  [
    'OpenAI',
    {
      'x-ratelimit-limit-requests': '500',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '1m30.5s',
      'x-ratelimit-limit-tokens': '30000',
      'x-ratelimit-remaining-tokens': '29000',
      'x-ratelimit-reset-tokens': '2s',
    },
    90_500,
    { rpm: 500, tpm: 30_000 },
  ],
  ['Azure OpenAI', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-remaining-tokens': '1200', 'retry-after-ms': '4000', 'retry-after': '4' }, 4_000, {}],
  [
    'Groq (requests per day, tokens per minute)',
    {
      'x-ratelimit-limit-requests': '14400',
      'x-ratelimit-remaining-requests': '14370',
      'x-ratelimit-reset-requests': '2m59.56s',
      'x-ratelimit-limit-tokens': '6000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '7.66s',
      'retry-after': '8',
    },
    8_000,
    { rpm: 14_400, tpm: 6_000 },
  ],
  [
    'Anthropic (a reset 40 s ahead)',
    {
      'anthropic-ratelimit-requests-limit': '50',
      'anthropic-ratelimit-requests-remaining': '0',
      'anthropic-ratelimit-requests-reset': at(40_000),
      'anthropic-ratelimit-input-tokens-limit': '40000',
      'anthropic-ratelimit-input-tokens-remaining': '39000',
      'anthropic-ratelimit-input-tokens-reset': at(2_000),
      'anthropic-ratelimit-output-tokens-limit': '8000',
      'anthropic-ratelimit-output-tokens-remaining': '8000',
      'anthropic-ratelimit-output-tokens-reset': at(0),
    },
    40_000,
    { rpm: 50, tpm: 8_000 }, // the tightest token window (output) whole
  ],
  ['DeepSeek (no rate-limit headers)', {}, 30_000, {}],
  ['Together (unsuffixed, reset in seconds)', { 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '12', 'x-tokenlimit-limit': '100000', 'x-tokenlimit-remaining': '90000' }, 12_000, { rpm: 60, tpm: 100_000 }],
  [
    'Fireworks',
    { 'x-ratelimit-limit-requests': '600', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-over-limit': 'yes', 'x-ratelimit-reset-requests': '3s' },
    3_000,
    { rpm: 600 },
  ],
  ['OpenRouter (reset in epoch ms)', { 'X-RateLimit-Limit': '20', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(NOW + 9_000) }, 9_000, { rpm: 20 }],
  ['a gateway (reset in Unix seconds)', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': String(NOW / 1000 + 42) }, 42_000, {}],
  ['retry-after as an HTTP date', { 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, 30_000, {}],
  ['extreme: retry-after 1e12', { 'retry-after': '1e12' }, 3_600_000, {}],
  ['extreme: retry-after-ms 1e15', { 'retry-after-ms': '1e15' }, 3_600_000, {}],
  ['extreme: reset 99999999h', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '99999999h' }, 3_600_000, {}],
  ['extreme: an HTTP date a year ahead', { 'retry-after': new Date(NOW + 365 * 86_400_000).toUTCString() }, 3_600_000, {}],
];

describe('provider header sets: the cooldown and the limiter agree', () => {
  test.each(CASES)('%s', (_name, headers, restMs, limits) => {
    const cooldown = rateLimitResetMs(new Headers(headers), NOW) ?? 30_000;
    const limiter = new KeyLimiter({ adaptive: false }, () => NOW);
    const rest = limiter.rateLimited(new Headers(headers), 30_000);
    expect(cooldown).toBe(restMs);
    expect(rest.ms).toBe(restMs);
    expect(limiter.tryReserve(1)).toEqual({ ok: false, waitMs: restMs });
    if (limits.rpm !== undefined) expect(limiter.limits.rpm).toBe(limits.rpm);
    if (limits.tpm !== undefined) expect(limiter.limits.tpm).toBe(limits.tpm);
  });

  test('a cap says so', () => {
    expect(parseRateLimitHeaders(new Headers({ 'retry-after-ms': '1e15' }), NOW)).toEqual({ retryAfterMs: 3_600_000, capped: true });
    expect(parseRateLimitHeaders(new Headers({ 'x-ratelimit-limit-requests': '0.0001' }), NOW)).toEqual({ requests: { limit: 1 }, capped: true });
    expect(parseRateLimitHeaders(new Headers({ 'retry-after': '3' }), NOW)).toEqual({ retryAfterMs: 3_000 });
  });

  test('the waits never overflow a timer (no TimeoutOverflowWarning)', () => {
    for (const [, headers] of CASES) expect(rateLimitResetMs(new Headers(headers), NOW) ?? 0).toBeLessThan(2 ** 31 - 1);
  });
});

describe('classify: out of money or quota disables the key (quota) and moves on', () => {
  test.each<[string, number, unknown]>([
    ['DeepSeek 402 Insufficient Balance', 402, { error: { message: 'Insufficient Balance', type: 'unknown_error', code: 'invalid_request_error' } }],
    ['a 402 without a body', 402, undefined],
    ['OpenRouter 402 credits', 402, { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/credits' } }],
    ['OpenAI 429 insufficient_quota', 429, { error: { code: 'insufficient_quota', type: 'insufficient_quota' } }],
    ['a 429 insufficient_balance', 429, { error: { code: 'insufficient_balance' } }],
  ])('%s', (_name, status, body) => {
    expect(classifyStatus(status, new Headers(), body)).toEqual({ kind: 'quota', action: 'rotate', disable: 'quota' });
  });

  test('a plain 429 still cools the key down', () => {
    expect(classifyStatus(429, new Headers(), { error: { code: 'rate_limit_exceeded', message: 'Rate limit reached' } })).toMatchObject({ kind: 'rate_limit', cooldown: true });
  });
});

describe('keyRejection: the status-only check made before the body is read', () => {
  test('takes a key out exactly when the full classification would, whatever the x-should-retry header', () => {
    for (let status = 100; status < 600; status++) {
      for (const should of [undefined, 'true', 'false']) {
        const headers = new Headers(should === undefined ? {} : { 'x-should-retry': should });
        expect(keyRejection(status)).toBe(classifyStatus(status, headers, undefined).disable);
      }
    }
  });
});
