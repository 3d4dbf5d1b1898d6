/**
 * One parser for every provider's headers: the cooldown (`rateLimitResetMs`)
 * and the limiter (`KeyLimiter.rateLimited`) agree on every case.
 */
import { describe, expect, test } from 'vitest';
import { rateLimitResetMs, parseRateLimitHeaders } from '../../src/resilience/headers';
import { classifyStatus, keyRejection } from '../../src/resilience/classify';
import { bodyRetryAfterMs } from '../../src/resilience/error-body';
import { KeyLimiter } from '../../src/resilience/rate-limit';

const NOW = Date.parse('2025-01-01T00:00:00Z');
/** The fields of `learnt` that `expected` names. */
const pick = (learnt: object, expected: object) => Object.fromEntries(Object.keys(expected).map((k) => [k, (learnt as Record<string, unknown>)[k]]));
const at = (ms: number) => new Date(NOW + ms).toISOString().replace('.000Z', 'Z');

/** What a case's headers teach the limiter: capacities, and periods where the headers state them. */
interface Learnt {
  rpm?: number;
  tpm?: number;
  requestsPeriodMs?: number;
  tokensPeriodMs?: number;
}

/** [provider, a 429's headers, the rest both must agree on (ms), the learnt limits]. */
const CASES: [string, Record<string, string>, number, Learnt][] = [
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
  [
    'Cerebras (requests per day, tokens per minute, resets in seconds)',
    {
      'x-ratelimit-limit-requests-day': '14400',
      'x-ratelimit-remaining-requests-day': '14000',
      'x-ratelimit-reset-requests-day': '33011.25',
      'x-ratelimit-limit-tokens-minute': '60000',
      'x-ratelimit-remaining-tokens-minute': '0',
      'x-ratelimit-reset-tokens-minute': '11.25',
    },
    11_250,
    { rpm: 14_400, requestsPeriodMs: 86_400_000, tpm: 60_000, tokensPeriodMs: 60_000 },
  ],
  [
    'Mistral (tokens by size: per minute and per month)',
    {
      'ratelimitbysize-limit': '500000',
      'ratelimitbysize-remaining': '0',
      'ratelimitbysize-reset': '17',
      'ratelimitbysize-query-cost': '1200',
      'x-ratelimitbysize-limit-minute': '500000',
      'x-ratelimitbysize-remaining-minute': '0',
      'x-ratelimitbysize-limit-month': '1000000000',
      'x-ratelimitbysize-remaining-month': '999000000',
    },
    17_000,
    { tpm: 500_000, tokensPeriodMs: 60_000 },
  ],
  [
    'IETF RateLimit fields, drafts up to 06 (RateLimit-Limit, -Remaining, -Reset, RateLimit-Policy)',
    { 'ratelimit-limit': '100', 'ratelimit-remaining': '0', 'ratelimit-reset': '25', 'ratelimit-policy': '100;w=60' },
    25_000,
    { rpm: 100, requestsPeriodMs: 60_000 },
  ],
  ['IETF drafts 00–03 (the policy in RateLimit-Limit)', { 'ratelimit-limit': '10, 10;w=1, 50;w=60', 'ratelimit-remaining': '0', 'ratelimit-reset': '1' }, 1_000, { rpm: 10, requestsPeriodMs: 1_000 }],
  ['IETF drafts 07–08 (RateLimit: limit, remaining, reset)', { ratelimit: 'limit=10, remaining=0, reset=7', 'ratelimit-policy': '10;w=10' }, 7_000, { rpm: 10, requestsPeriodMs: 10_000 }],
  [
    'IETF drafts 09+, Cloudflare API (RateLimit "policy";r;t, RateLimit-Policy "policy";q;w)',
    { ratelimit: '"default";r=0;t=30', 'ratelimit-policy': '"burst";q=4000;w=3600, "default";q=1200;w=300' },
    30_000,
    { rpm: 1_200, requestsPeriodMs: 300_000 },
  ],
  ['Cloudflare API, older (x-ratelimit-reset as an HTTP date)', { 'x-ratelimit-limit': '1200', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': 'Wed, 01 Jan 2025 00:00:45 GMT' }, 45_000, { rpm: 1_200 }],
  ['Google Gemini (no rate-limit headers; the wait is in the body)', {}, 30_000, {}],
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
    const learnt = limiter.limits;
    expect(pick(learnt, limits)).toEqual(limits);
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

describe('periods the headers state, and the IETF RateLimit fields', () => {
  const parse = (headers: Record<string, string>) => parseRateLimitHeaders(new Headers(headers), NOW);

  test("Cerebras's documented example: resets in fractional seconds, periods from the names", () => {
    expect(
      parse({
        'x-ratelimit-limit-requests-day': '1000000000',
        'x-ratelimit-limit-tokens-minute': '1000000000',
        'x-ratelimit-remaining-requests-day': '999997455',
        'x-ratelimit-remaining-tokens-minute': '999998298',
        'x-ratelimit-reset-requests-day': '33011.382867097855',
        'x-ratelimit-reset-tokens-minute': '11.382867097854614',
      }),
    ).toEqual({
      requests: { limit: 1e9, remaining: 999_997_455, resetMs: 33_011_382.867097855, periodMs: 86_400_000 },
      tokens: { limit: 1e9, remaining: 999_998_298, resetMs: 11_382.867097854614, periodMs: 60_000 },
    });
  });

  test("Mistral: the per-minute family lends its period to the window nearest its limit; the per-month one is not kept", () => {
    const minute = { 'x-ratelimitbysize-limit-minute': '500000', 'x-ratelimitbysize-remaining-minute': '480000', 'x-ratelimitbysize-limit-month': '1000000000', 'x-ratelimitbysize-remaining-month': '999000000' };
    expect(parse({ 'ratelimitbysize-limit': '500000', 'ratelimitbysize-remaining': '480000', 'ratelimitbysize-reset': '42', ...minute })).toEqual({
      tokens: { limit: 500_000, remaining: 480_000, resetMs: 42_000, periodMs: 60_000 },
    });
    // Nearest its limit is another window (the month's): its period is not the minute's.
    expect(parse({ 'ratelimitbysize-limit': '1000000000', 'ratelimitbysize-remaining': '20000', 'ratelimitbysize-reset': '86400', ...minute })).toEqual({
      tokens: { limit: 1e9, remaining: 20_000, resetMs: 86_400_000 },
    });
  });

  test('drafts 09 on: items joined to their policies by name; a policy in tokens is a tokens window; the nearest its limit wins', () => {
    expect(
      parse({
        ratelimit: '"rpm";r=40;t=20, "tpm";r=9000;t=5, "daily";r=900;t=3600',
        'ratelimit-policy': '"rpm";q=60;w=60, "tpm";q=10000;w=60;qu="tokens", "daily";q=1000;w=86400, "bytes";q=1000000;w=1;qu="content-bytes"',
      }),
    ).toEqual({ requests: { limit: 60, remaining: 40, resetMs: 20_000, periodMs: 60_000 }, tokens: { limit: 10_000, remaining: 9_000, resetMs: 5_000, periodMs: 60_000 } });
    // A policy alone (no RateLimit item names it) states a limit and a period.
    expect(parse({ 'ratelimit-policy': '"burst";q=100;w=60' })).toEqual({ requests: { limit: 100, periodMs: 60_000 } });
  });

  test('a policy window beyond a day is kept at a day, and says so', () => {
    expect(parse({ ratelimit: '"monthly";r=10;t=100000', 'ratelimit-policy': '"monthly";q=1000;w=2592000' })).toEqual({
      requests: { limit: 1_000, remaining: 10, resetMs: 86_400_000, periodMs: 86_400_000 },
      capped: true,
    });
  });

  test('garbage in the fields is ignored, field by field', () => {
    expect(parse({ ratelimit: 'nonsense', 'ratelimit-policy': ';;,"unterminated' })).toEqual({});
    expect(parse({ 'ratelimit-limit': 'many', 'ratelimit-remaining': '3', 'ratelimit-reset': '-1' })).toEqual({ requests: { remaining: 3 } });
    expect(parse({ ratelimit: '"default";r=x;t=5', 'ratelimit-policy': '"default";q=-5;w=0' })).toEqual({ requests: { resetMs: 5_000 } });
  });
});

/** Gemini's 429 body (OpenAI-compatible endpoint and native API alike): RetryInfo in whole seconds, the message to the nanosecond. */
const geminiError = (retryDelay: string, message = 'You exceeded your current quota, please check your plan and billing details.') => ({
  error: {
    code: 429,
    message,
    status: 'RESOURCE_EXHAUSTED',
    details: [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier', quotaValue: '10' }] },
      { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay },
    ],
  },
});

describe('429 bodies: the wait a body asks for', () => {
  test.each<[string, unknown, number | undefined]>([
    ['Gemini: RetryInfo', geminiError('53s'), 53_000],
    ['Gemini: RetryInfo rounded down, the message to the nanosecond (the longer is kept)', geminiError('45s', 'Quota exceeded for metric: generate_content_free_tier_requests, limit: 10. Please retry in 45.578569677s.'), 45_579],
    ['Gemini OpenAI-compatible endpoint: the error in a list', [geminiError('5s')], 5_000],
    ['Gemini quoted by a gateway in its message', { error: { message: '{\n  "error": {\n    "code": 429,\n    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "44s"}]}}', code: 429 } }, 44_000],
    ['Azure OpenAI: the message', { error: { code: '429', message: 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 33 seconds.' } }, 33_000],
    ['OpenAI, Groq: the message', { error: { message: 'Rate limit reached for model in organization on tokens per day (TPD): Limit 100000, Used 99000. Please try again in 1m30.5s.', type: 'tokens', code: 'rate_limit_exceeded' } }, 90_500],
    ['OpenRouter: the upstream\'s headers in error.metadata', { error: { code: 429, message: 'Rate limit exceeded: free-models-per-min.', metadata: { headers: { 'X-RateLimit-Limit': '20', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(NOW + 9_000) } } } }, 9_000],
    ['no wait stated', { error: { message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } }, undefined],
    ['not an object', 'Too Many Requests', undefined],
  ])('%s', (_name, body, ms) => {
    expect(bodyRetryAfterMs(body, JSON.stringify(body), NOW)).toBe(ms);
  });

  test('a body that is not JSON is searched as text', () => {
    expect(bodyRetryAfterMs(undefined, 'Too many requests. Please retry after 20 seconds.', NOW)).toBe(20_000);
  });

  test("the headers come first; the body's wait stands where they state no wait and no reset of the exhausted window", () => {
    const rest = (headers: Record<string, string>) => new KeyLimiter({ adaptive: false }, () => NOW).rateLimited(new Headers(headers), 5_000, undefined, 53_000).ms;
    expect(rest({})).toBe(53_000);
    expect(rest({ 'retry-after': '4' })).toBe(4_000);
    expect(rest({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '7s' })).toBe(7_000);
    // Beyond an hour: capped, and said so.
    expect(new KeyLimiter({ adaptive: false }, () => NOW).rateLimited(new Headers(), 5_000, undefined, 37_025_000)).toMatchObject({ ms: 3_600_000, capped: true });
  });
});

describe('classify: out of money or quota disables the key (quota) and moves on', () => {
  test.each<[string, number, unknown]>([
    ['DeepSeek 402 Insufficient Balance', 402, { error: { message: 'Insufficient Balance', type: 'unknown_error', code: 'invalid_request_error' } }],
    ['a 402 without a body', 402, undefined],
    ['OpenRouter 402 credits', 402, { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/credits' } }],
    ['OpenAI 429 insufficient_quota', 429, { error: { code: 'insufficient_quota', type: 'insufficient_quota' } }],
    ['a 429 insufficient_balance', 429, { error: { code: 'insufficient_balance' } }],
    ["Anthropic's 400 for an account out of credit", 400, { type: 'error', error: { type: 'invalid_request_error', message: 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.' } }],
  ])('%s', (_name, status, body) => {
    expect(classifyStatus(status, new Headers(), body)).toEqual({ kind: 'quota', action: 'rotate', disable: 'quota' });
  });

  test("OpenAI's 429 'Request too large' rotates without cooling the key (waiting cannot help it)", () => {
    const body = { error: { code: 'rate_limit_exceeded', type: 'tokens', message: 'Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 30601.' } };
    expect(classifyStatus(429, new Headers(), body)).toEqual({ kind: 'rate_limit', action: 'rotate' });
  });

  test('a plain 429 still cools the key down', () => {
    expect(classifyStatus(429, new Headers(), { error: { code: 'rate_limit_exceeded', message: 'Rate limit reached' } })).toMatchObject({ kind: 'rate_limit', cooldown: true });
  });

  test.each([
    ["OpenAI's 403 for a project without access to the model", 403, { error: { message: 'Project `proj_fake0001` does not have access to model `gpt-4.1`', type: 'invalid_request_error', param: null, code: 'model_not_found' } }],
    ["OpenAI's 404 for a model the organisation does not have", 404, { error: { message: 'The model `gpt-9` does not exist or you do not have access to it.', type: 'invalid_request_error', param: null, code: 'model_not_found' } }],
    ["Azure's 404 for a deployment the resource does not have", 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' } }],
  ])('%s moves the request to another key, the key kept for other models', (_name, status, body) => {
    expect(classifyStatus(status, new Headers(), body)).toEqual({ kind: 'not_found', action: 'rotate', modelUnavailable: true });
  });

  test.each([
    ["Gemini's API_KEY_INVALID", { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }] } }],
    ["Gemini's API_KEY_EXPIRED in a one-item list", [{ error: { code: 400, message: 'API key expired. Please renew the API key.', status: 'INVALID_ARGUMENT', details: [{ reason: 'API_KEY_EXPIRED' }] } }]],
    ['a message alone: "API Key not found"', { error: { message: 'API Key not found. Please pass a valid API key.' } }],
  ])('a 400 saying the key is not accepted (%s) disables it as a 401', (_name, body) => {
    expect(classifyStatus(400, new Headers(), body)).toEqual({ kind: 'unauthorized', action: 'rotate', disable: 'unauthorized' });
  });

  test('a 400 about the request, even one naming an API key parameter, is the caller\'s', () => {
    expect(classifyStatus(400, new Headers(), { error: { message: "Invalid value for 'api_key_name': expected a string.", code: 'invalid_value' } })).toEqual({ kind: 'bad_request', action: 'surface' });
    expect(classifyStatus(400, new Headers(), { error: { message: 'Please provide a valid model.', status: 'INVALID_ARGUMENT', details: [{ reason: 'MODEL_INVALID' }] } })).toEqual({ kind: 'bad_request', action: 'surface' });
  });

  test.each([
    ['OpenAI', { error: { message: "This model's maximum context length is 1000 tokens.", code: 'context_length_exceeded' } }],
    ['Gemini', { error: { code: 400, message: 'The input token count (3012) exceeds the maximum number of tokens allowed (1000).', status: 'INVALID_ARGUMENT' } }],
    ['Anthropic', { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 3012 tokens > 1000 maximum' } }],
    ['Mistral (a top-level message)', { object: 'error', message: 'Prompt contains 3012 tokens and 0 draft tokens, too large for model with 1000 maximum context length', code: 3051 }],
    ['xAI (error as a string)', { error: "This model's maximum prompt length is 1000 but the request contains 3012 tokens." }],
  ])('a 400 saying the prompt is too long for the model (%s) is context_length', (_name, body) => {
    expect(classifyStatus(400, new Headers(), body)).toEqual({ kind: 'context_length', action: 'surface' });
  });

  test('any other 403 still disables the key, any other 404 surfaces', () => {
    expect(classifyStatus(403, new Headers(), { error: { code: 'unsupported_country_region_territory' } })).toEqual({ kind: 'forbidden', action: 'rotate', disable: 'forbidden' });
    expect(classifyStatus(404, new Headers(), { error: { message: 'Not found' } })).toEqual({ kind: 'not_found', action: 'surface' });
  });
});

describe('keyRejection: the status-only check made before the body is read', () => {
  test('takes a key out only where the full classification would with any body, whatever the x-should-retry header', () => {
    const bodies = [undefined, { error: { code: 'model_not_found' } }];
    for (let status = 100; status < 600; status++) {
      for (const should of [undefined, 'true', 'false']) {
        const headers = new Headers(should === undefined ? {} : { 'x-should-retry': should });
        const disables = bodies.map((body) => classifyStatus(status, headers, body).disable);
        expect(keyRejection(status)).toBe(disables[0] === disables[1] ? disables[0] : undefined);
      }
    }
  });

  test('a 403 waits for its body: it may refuse the key, or only its use of one model', () => {
    expect(keyRejection(403)).toBeUndefined();
    expect(classifyStatus(403, new Headers(), undefined).disable).toBe('forbidden');
  });
});
