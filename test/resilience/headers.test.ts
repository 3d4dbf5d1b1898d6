import { describe, expect, test } from 'vitest';
import { parseDuration, rateLimitResetMs, retryAfterMs } from '../../src/resilience/headers';
import { parseRateLimitHeaders, parseResetMs, parseRfc3339 } from '../../src/resilience/rate-limit';

const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('parseDuration', () => {
  test.each([
    ['1s', 1_000],
    ['6m0s', 360_000],
    ['20ms', 20],
    ['1m30.5s', 90_500],
    ['0s', 0],
    ['2h', 7_200_000],
    ['0.5s', 500],
    ['1h0m0s', 3_600_000],
    ['7.66s', 7_660],
    ['500µs', 0.5],
    ['250us', 0.25],
    ['1000000ns', 1],
    [' 2s ', 2_000],
    ['30', 30_000],
    ['1.5', 1_500],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  test.each([['abc'], ['-1s'], ['1x'], [''], ['   '], ['s'], ['1.s'], ['1e3s'], ['1 s'], ['-5'], ['NaN'], ['Infinity']])(
    '%j is garbage',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );

  test.each([[null], [undefined]])('%s is undefined', (value) => {
    expect(parseDuration(value)).toBeUndefined();
  });
});

describe('retryAfterMs', () => {
  test.each<[string, Record<string, string>, number | undefined]>([
    ['retry-after-ms', { 'retry-after-ms': '1500' }, 1_500],
    ['retry-after in seconds', { 'retry-after': '2' }, 2_000],
    ['retry-after as an HTTP date', { 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, 30_000],
    ['an HTTP date in the past', { 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }, 0],
    ['retry-after-ms before retry-after', { 'retry-after-ms': '250', 'retry-after': '9' }, 250],
    ['garbage retry-after-ms falls back to retry-after', { 'retry-after-ms': 'soon', 'retry-after': '3' }, 3_000],
    ['negative values', { 'retry-after-ms': '-1', 'retry-after': '-1' }, undefined],
    ['empty values', { 'retry-after-ms': '', 'retry-after': ' ' }, undefined],
    ['garbage', { 'retry-after-ms': 'abc', 'retry-after': '1x' }, undefined],
    ['nothing', {}, undefined],
  ])('%s', (_name, headers, expected) => {
    expect(retryAfterMs(new Headers(headers), NOW)).toBe(expected);
  });
});

describe('rateLimitResetMs', () => {
  test.each<[string, Record<string, string>, number | undefined]>([
    ['the explicit retry hint first', { 'retry-after-ms': '700', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '9s' }, 700],
    ['the exhausted requests window', { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '20s' }, 20_000],
    ['a window with room left: its reset, as the limiter rests it (the two agree)', { 'x-ratelimit-remaining-requests': '5', 'x-ratelimit-reset-requests': '20s' }, 20_000],
    [
      'the later of two exhausted windows',
      {
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '1s',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': '6m0s',
      },
      360_000,
    ],
    ['nothing', {}, undefined],
  ])('%s', (_name, headers, expected) => {
    expect(rateLimitResetMs(new Headers(headers), NOW)).toBe(expected);
  });
});

describe('parseRfc3339', () => {
  test.each<[string, number | undefined]>([
    ['2025-01-01T00:00:30Z', NOW + 30_000],
    ['2025-01-01T00:00:30.25Z', NOW + 30_250],
    ['2025-01-01T00:00:30.123456789Z', NOW + 30_123.456789],
    ['2025-01-01T01:00:30+01:00', NOW + 30_000],
    ['2024-12-31T23:30:00-00:30', NOW],
    ['2025-01-01t00:00:30z', NOW + 30_000],
    ['2025-01-01 00:00:30Z', NOW + 30_000],
    ['2025-02-30T00:00:00Z', undefined],
    ['2025-13-01T00:00:00Z', undefined],
    ['2025-01-01T24:00:00Z', undefined],
    ['2025-01-01T00:00:00', undefined],
    ['2025-01-01', undefined],
    ['1', undefined],
    ['Wed, 01 Jan 2025 00:00:30 GMT', undefined],
  ])('%j', (text, expected) => {
    const parsed = parseRfc3339(text);
    if (expected === undefined) expect(parsed).toBeUndefined();
    else expect(parsed).toBeCloseTo(expected, 6);
  });
});

describe('parseResetMs', () => {
  test.each<[string, string | null, number | undefined]>([
    ['an OpenAI duration', '6m0s', 360_000],
    ['an RFC 3339 timestamp', '2025-01-01T00:00:01Z', 1_000],
    ['an RFC 3339 timestamp in the past', '2024-12-31T23:59:59Z', 0],
    ['Unix seconds', String(NOW / 1000 + 60), 60_000],
    ['Unix milliseconds', String(NOW + 2_500), 2_500],
    ['bare seconds', '12', 12_000],
    ['garbage', 'soon', undefined],
    ['empty', '', undefined],
    ['absent', null, undefined],
  ])('%s', (_name, value, expected) => {
    expect(parseResetMs(value, NOW)).toBe(expected);
  });
});

describe('parseRateLimitHeaders', () => {
  test.each<[string, Record<string, string>, ReturnType<typeof parseRateLimitHeaders>]>([
    ['no headers', {}, {}],
    [
      'an OpenAI set',
      {
        'x-ratelimit-limit-requests': '10000',
        'x-ratelimit-remaining-requests': '9999',
        'x-ratelimit-reset-requests': '6ms',
        'x-ratelimit-limit-tokens': '30000000',
        'x-ratelimit-remaining-tokens': '29999980',
        'x-ratelimit-reset-tokens': '0s',
      },
      {
        requests: { limit: 10_000, remaining: 9_999, resetMs: 6 },
        tokens: { limit: 30_000_000, remaining: 29_999_980, resetMs: 0 },
      },
    ],
    [
      'an OpenAI 429 set',
      {
        'x-ratelimit-limit-requests': '60',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '1m30.5s',
        'x-ratelimit-limit-tokens': '150000',
        'x-ratelimit-remaining-tokens': '149984',
        'x-ratelimit-reset-tokens': '6m0s',
      },
      {
        requests: { limit: 60, remaining: 0, resetMs: 90_500 },
        tokens: { limit: 150_000, remaining: 149_984, resetMs: 360_000 },
      },
    ],
    ['only requests', { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-remaining-requests': '499' }, { requests: { limit: 500, remaining: 499 } }],
    [
      'garbage dropped field by field',
      {
        'x-ratelimit-limit-requests': 'abc',
        'x-ratelimit-remaining-requests': '59',
        'x-ratelimit-reset-requests': '1x',
        'x-ratelimit-limit-tokens': '-1',
        'x-ratelimit-remaining-tokens': '',
        'x-ratelimit-reset-tokens': '-1s',
      },
      { requests: { remaining: 59 } },
    ],
    ['a zero limit is garbage', { 'x-ratelimit-limit-requests': '0', 'x-ratelimit-reset-requests': '2h' }, { requests: { resetMs: 7_200_000 } }],
    ['hex and exponents are garbage', { 'x-ratelimit-limit-requests': '0x10', 'x-ratelimit-remaining-requests': '1e3' }, {}],
    [
      'an Anthropic set (resets as RFC 3339, relative to now)',
      {
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '49',
        'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:01Z',
        'anthropic-ratelimit-tokens-limit': '8000',
        'anthropic-ratelimit-tokens-remaining': '7000',
        'anthropic-ratelimit-tokens-reset': '2025-01-01T00:00:07.5Z',
        'anthropic-ratelimit-input-tokens-limit': '40000',
        'anthropic-ratelimit-input-tokens-remaining': '39000',
        'anthropic-ratelimit-input-tokens-reset': '2025-01-01T00:00:01.5Z',
        'anthropic-ratelimit-output-tokens-limit': '8000',
        'anthropic-ratelimit-output-tokens-remaining': '7000',
        'anthropic-ratelimit-output-tokens-reset': '2025-01-01T00:00:07.5Z',
      },
      {
        requests: { limit: 50, remaining: 49, resetMs: 1_000 },
        tokens: { limit: 8_000, remaining: 7_000, resetMs: 7_500 },
      },
    ],
    [
      'Anthropic input/output tokens: the tighter window (output) is tokens',
      {
        'anthropic-ratelimit-input-tokens-limit': '40000',
        'anthropic-ratelimit-input-tokens-remaining': '39000',
        'anthropic-ratelimit-input-tokens-reset': '2025-01-01T00:00:01.5Z',
        'anthropic-ratelimit-output-tokens-limit': '8000',
        'anthropic-ratelimit-output-tokens-remaining': '100',
        'anthropic-ratelimit-output-tokens-reset': '2025-01-01T00:00:55Z',
      },
      { tokens: { limit: 8_000, remaining: 100, resetMs: 55_000 } },
    ],
    [
      'Anthropic input/output tokens: the tighter window (input) is tokens',
      {
        'anthropic-ratelimit-input-tokens-limit': '40000',
        'anthropic-ratelimit-input-tokens-remaining': '0',
        'anthropic-ratelimit-input-tokens-reset': '2025-01-01T00:01:00Z',
        'anthropic-ratelimit-output-tokens-limit': '8000',
        'anthropic-ratelimit-output-tokens-remaining': '8000',
        'anthropic-ratelimit-output-tokens-reset': '2025-01-01T00:00:00Z',
      },
      { tokens: { limit: 40_000, remaining: 0, resetMs: 60_000 } },
    ],
    [
      'Anthropic resets in the past are 0, offsets honoured, garbage dropped',
      {
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '50',
        'anthropic-ratelimit-requests-reset': '2024-12-31T23:59:00Z',
        'anthropic-ratelimit-tokens-limit': 'lots',
        'anthropic-ratelimit-tokens-remaining': '20000',
        'anthropic-ratelimit-tokens-reset': '2025-01-01T01:00:10+01:00',
      },
      {
        requests: { limit: 50, remaining: 50, resetMs: 0 },
        tokens: { remaining: 20_000, resetMs: 10_000 },
      },
    ],
    ['an Anthropic reset that is not a timestamp is dropped', { 'anthropic-ratelimit-requests-reset': 'tomorrow' }, {}],
    [
      'mixed: the tighter window of each dimension wins',
      {
        'x-ratelimit-limit-requests': '100',
        'x-ratelimit-remaining-requests': '10',
        'x-ratelimit-reset-requests': '54s',
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '3',
        'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:56Z',
        'x-ratelimit-limit-tokens': '10000',
        'x-ratelimit-remaining-tokens': '500',
        'x-ratelimit-reset-tokens': '57s',
        'anthropic-ratelimit-output-tokens-limit': '8000',
        'anthropic-ratelimit-output-tokens-remaining': '7000',
      },
      {
        requests: { limit: 50, remaining: 3, resetMs: 56_000 },
        tokens: { limit: 10_000, remaining: 500, resetMs: 57_000 },
      },
    ],
    [
      'a gateway reset in Unix seconds',
      { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': String(NOW / 1000 + 42) },
      { requests: { remaining: 0, resetMs: 42_000 } },
    ],
  ])('%s', (_name, headers, expected) => {
    expect(parseRateLimitHeaders(new Headers(headers), NOW)).toEqual(expected);
  });
});

describe('parseRateLimitHeaders: the same values read again', () => {
  const openai = (remaining: string, reset = '6ms') =>
    new Headers({ 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': remaining, 'x-ratelimit-reset-requests': reset });

  test('a reply whose values repeat the last one reads the same; one that changes a value reads the new value', () => {
    expect(parseRateLimitHeaders(openai('90'), NOW)).toEqual({ requests: { limit: 100, remaining: 90, resetMs: 6 } });
    expect(parseRateLimitHeaders(openai('90'), NOW + 5)).toEqual({ requests: { limit: 100, remaining: 90, resetMs: 6 } });
    expect(parseRateLimitHeaders(openai('89'), NOW + 6)).toEqual({ requests: { limit: 100, remaining: 89, resetMs: 6 } });
    expect(parseRateLimitHeaders(openai('89', '1s'), NOW + 7)).toEqual({ requests: { limit: 100, remaining: 89, resetMs: 1_000 } });
    // A header that goes away is gone from the next read.
    expect(parseRateLimitHeaders(new Headers({ 'x-ratelimit-limit-requests': '100', 'x-ratelimit-reset-requests': '1s' }), NOW)).toEqual({
      requests: { limit: 100, resetMs: 1_000 },
    });
    expect(parseRateLimitHeaders(new Headers(), NOW)).toEqual({});
  });

  test('a reset stated as a moment is measured from each read\'s own now, even when the text repeats', () => {
    const at = new Headers({ 'anthropic-ratelimit-requests-remaining': '5', 'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:30Z' });
    expect(parseRateLimitHeaders(at, NOW).requests?.resetMs).toBe(30_000);
    expect(parseRateLimitHeaders(at, NOW + 10_000).requests?.resetMs).toBe(20_000);
    const epoch = new Headers({ 'x-ratelimit-remaining': '5', 'x-ratelimit-reset': String(NOW / 1000 + 30) });
    expect(parseRateLimitHeaders(epoch, NOW).requests?.resetMs).toBe(30_000);
    expect(parseRateLimitHeaders(epoch, NOW + 1_000).requests?.resetMs).toBe(29_000);
    const date = new Headers({ 'retry-after': new Date(NOW + 60_000).toUTCString() });
    expect(parseRateLimitHeaders(date, NOW).retryAfterMs).toBe(60_000);
    expect(parseRateLimitHeaders(date, NOW + 20_000).retryAfterMs).toBe(40_000);
  });
});

describe('parseRateLimitHeaders: what it reads', () => {
  const init = { 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '40', 'x-ratelimit-reset-requests': '6s', 'retry-after-ms': '250' };

  test("another implementation's Headers (iterable, not this realm's class) reads as a Headers does", () => {
    const real = new Headers(init);
    const foreign = { [Symbol.iterator]: () => [...real][Symbol.iterator]() } as unknown as Headers;
    expect(parseRateLimitHeaders(foreign, 1_000)).toEqual(parseRateLimitHeaders(new Headers(init), 1_000));
  });

  test('the entries already read, as the pairs its iterator gave, read as the Headers they came from', () => {
    const real = new Headers(init);
    expect(parseRateLimitHeaders([...real], 1_000)).toEqual(parseRateLimitHeaders(new Headers(init), 1_000));
  });
});
