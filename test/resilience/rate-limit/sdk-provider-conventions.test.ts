/**
 * Providers' own rate-limit conventions, through the real `openai` SDK and the
 * public API, nothing configured: what each states in its headers (or its 429
 * body) is what keyplex paces and cools down by. Stand-ins follow each
 * provider's documented shapes; the clock is fake, the figures are counts.
 */
import { describe, expect, test, vi } from 'vitest';
import { keyplex } from '../../../src/index';
import { HttpResponse } from 'msw';
import { chatReply, errorReply, keyRing, provider } from '../../support/upstream';
import '../../support/setup';
import { managedClients } from '../../support/manage';
import { record } from '../../support/events';
import { fakeClock, quiesce, until } from '../../support/time';

const BASE = 'https://api.conventions.test/v1';
const BODY = { model: 'llama3.1-8b', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 50 };

const manage = managedClients();

describe('Cerebras: requests per day and tokens per minute, in the header names', () => {
  test('a per-day request limit holds the key until the day resets: the fourth request of a 3-a-day key is refused at once, 0 upstream 429s', async () => {
    fakeClock();
    vi.setSystemTime(Date.parse('2025-03-01T20:00:00Z'));
    const ring = keyRing('a');
    let used = 0;
    let rejected = 0;
    // A fixed window per UTC day (3 requests) and one per minute for tokens, stated as Cerebras states them.
    const headers = (remaining: number) => {
      const now = Date.now();
      const midnight = Math.ceil(now / 86_400_000) * 86_400_000;
      return {
        'x-ratelimit-limit-requests-day': '3',
        'x-ratelimit-remaining-requests-day': String(remaining),
        'x-ratelimit-reset-requests-day': String((midnight - now) / 1000 + 0.382867097855),
        'x-ratelimit-limit-tokens-minute': '60000',
        'x-ratelimit-remaining-tokens-minute': '59900',
        'x-ratelimit-reset-tokens-minute': String(60 - ((now / 1000) % 60) - 0.617132902145),
      };
    };
    const calls = provider(BASE, () => {
      if (used >= 3) {
        rejected++;
        return errorReply(429, 'too_many_requests_error', headers(0), 'Requests per day limit exceeded - too many requests sent.');
      }
      used++;
      return chatReply(BODY.model, 'hi', {}, { headers: headers(3 - used) });
    });
    const { manager, client } = manage({ providers: { cerebras: { baseURL: BASE, keys: ring.keys } } });
    for (let i = 0; i < 3; i++) await client.chat.completions.create(BODY);

    // Four hours to the day's reset: a request with a minute to live is refused by keyplex, not sent.
    let error: { status?: number } | undefined;
    const fourth = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 60_000 })).catch((e: unknown) => void (error = e as { status?: number }));
    for (let i = 0; i < 70 && error === undefined; i++) await vi.advanceTimersByTimeAsync(1_000);
    expect({ upstreamCalls: calls.length, upstream429s: rejected }).toEqual({ upstreamCalls: 3, upstream429s: 0 });
    await fourth;
    expect(error?.status).toBe(429);
    expect(manager.stats().providers.cerebras!.keys[0]!.limits).toMatchObject({ rpm: 3, requestsPeriodMs: 86_400_000, tpm: 60_000, tokensPeriodMs: 60_000, source: 'headers' });
  });
});

describe('Mistral: tokens per minute "by size"', () => {
  test('a 429 rests the key until ratelimitbysize-reset (17 s), not the 5 s default; the per-minute token limit is learnt', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const limits = { 'ratelimitbysize-limit': '500000', 'x-ratelimitbysize-limit-minute': '500000', 'x-ratelimitbysize-limit-month': '1000000000', 'x-ratelimitbysize-remaining-month': '990000000' };
    provider(BASE, (call) =>
      ring.idOf(call.key) === 'a'
        ? errorReply(429, null, { ...limits, 'ratelimitbysize-remaining': '0', 'ratelimitbysize-reset': '17', 'x-ratelimitbysize-remaining-minute': '0' }, 'Requests rate limit exceeded')
        : chatReply(BODY.model, 'hi', {}, { headers: { ...limits, 'ratelimitbysize-remaining': '499000', 'ratelimitbysize-reset': '17', 'x-ratelimitbysize-remaining-minute': '499000' } }),
    );
    const { manager, client } = manage({ providers: { mistral: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const cooldowns = record(manager, 'key:cooldown');
    await client.chat.completions.create(BODY);
    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([17_000]);
    const b = manager.stats().providers.mistral!.keys.find((k) => k.id === 'b')!;
    expect(b.limits).toMatchObject({ tpm: 500_000, tokensPeriodMs: 60_000, source: 'headers' });
  });
});

describe('the IETF RateLimit fields (Cloudflare API, gateways)', () => {
  /** A sliding window of `limit` requests per `periodMs` per key, stating it in drafts-09 fields; 429 (with Retry-After) above. */
  function ietfUpstream(limit: number, periodMs: number) {
    const sent: number[] = [];
    const accepted: number[] = [];
    let rejected = 0;
    const calls = provider(BASE, () => {
      const now = Date.now();
      while (sent.length > 0 && sent[0]! <= now - periodMs) sent.shift();
      const resetS = Math.ceil(((sent[0] ?? now) + periodMs - now) / 1000);
      const headers = (remaining: number) => ({ ratelimit: `"default";r=${remaining};t=${resetS}`, 'ratelimit-policy': `"default";q=${limit};w=${periodMs / 1000}` });
      if (sent.length >= limit) {
        rejected++;
        return errorReply(429, null, { ...headers(0), 'retry-after': String(resetS) }, 'Rate limited');
      }
      sent.push(now);
      accepted.push(now);
      return chatReply(BODY.model, 'hi', {}, { headers: headers(limit - sent.length) });
    });
    return { calls, accepted, rejected: () => rejected };
  }

  test('12 at once on a key of 4 per 10 s (stated only in RateLimit / RateLimit-Policy): 4 at a time, 10 s apart, 0 upstream 429s', async () => {
    fakeClock();
    const ring = keyRing('a');
    const upstream = ietfUpstream(4, 10_000);
    const { manager, client } = manage({ providers: { workersai: { baseURL: BASE, keys: ring.keys } } });
    const start = Date.now();
    let settled = 0;
    const all = Array.from({ length: 12 }, () => client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 120_000 })).finally(() => void settled++));
    await until(() => upstream.accepted.length >= 4, 'the first 4 sent');
    await quiesce(() => upstream.calls.length);
    expect(upstream.calls).toHaveLength(4);
    for (let i = 0; i < 40 && settled < 12; i++) await vi.advanceTimersByTimeAsync(1_000);
    await Promise.all(all);
    const offsets = upstream.accepted.map((at) => Math.floor((at - start) / 10_000));
    expect({ upstream429s: upstream.rejected(), perTenSeconds: [0, 1, 2].map((w) => offsets.filter((o) => o === w).length) }).toEqual({ upstream429s: 0, perTenSeconds: [4, 4, 4] });
    expect(manager.stats().providers.workersai!.keys[0]!.limits).toMatchObject({ rpm: 4, requestsPeriodMs: 10_000, source: 'headers' });
  });
});

/** A 429 as Gemini's OpenAI-compatible endpoint sends it: no rate-limit header, the wait in RetryInfo and in the message; sometimes in a list. */
function geminiRateLimited(retryDelayS: number, preciseS: number, listed = false): Response {
  const error = {
    code: 429,
    message: `You exceeded your current quota, please check your plan and billing details. Please retry in ${preciseS}s.`,
    status: 'RESOURCE_EXHAUSTED',
    details: [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier', quotaValue: '10' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${retryDelayS}s` },
    ],
  };
  return HttpResponse.json(listed ? [{ error }] : { error }, { status: 429 });
}

describe('Google Gemini (OpenAI-compatible endpoint): the wait is in the 429 body', () => {
  test("a 429 cools the key for the body's RetryInfo / message (53.02 s), not the 5 s default, and the request moves to another key", async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(BASE, (call) => (ring.idOf(call.key) === 'a' ? geminiRateLimited(53, 53.016342224) : chatReply('gemini-2.5-flash')));
    const { manager, client } = manage({ providers: { gemini: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const cooldowns = record(manager, 'key:cooldown');
    await client.chat.completions.create({ ...BODY, model: 'gemini-2.5-flash' });
    expect(cooldowns.map((c) => [c.keyId, c.retryAfterMs])).toEqual([['a', 53_017]]);
  });

  test('one key, a per-minute quota free again in 20 s: the retry goes once, 20 s later, and is served (no second 429)', async () => {
    fakeClock();
    const ring = keyRing('a');
    const start = Date.now();
    const sentAt: number[] = [];
    provider(BASE, () => {
      sentAt.push(Date.now() - start);
      return Date.now() - start < 19_500 ? geminiRateLimited(19, 19.5, true) : chatReply('gemini-2.5-flash');
    });
    const { client } = manage({ providers: { gemini: { baseURL: BASE, keys: ring.keys } } });
    let done = false;
    const reply = client.chat.completions.create({ ...BODY, model: 'gemini-2.5-flash' }, keyplex.options({ deadlineMs: 120_000 })).finally(() => void (done = true));
    for (let i = 0; i < 120 && !done; i++) await vi.advanceTimersByTimeAsync(500);
    expect(sentAt).toEqual([0, 19_500]);
    await reply;
  });
});

describe("a hostile 429 body (the message is the upstream's to write)", () => {
  // Read by a backtracking pattern, 30 letters took ~8 s of one core (twice as long per letter more); the default test timeout ends it.
  test('a long run of letters after "retry in 1" is read at once: the next key serves the request', async () => {
    const ring = keyRing('a', 'b');
    const message = `Please retry in 1${'a'.repeat(30)}_`;
    provider(BASE, ({ key }) => (ring.idOf(key) === 'a' ? errorReply(429, 'rate_limit_exceeded', {}, message) : chatReply(BODY.model, 'ok')));
    const { client } = manage({ providers: { p: { baseURL: BASE, keys: ring.keys } } });
    const reply = await client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 60_000 }));
    expect(reply.choices[0]!.message.content).toBe('ok');
  });
});

describe("OpenAI's 429 'Request too large' (a request over the key's whole tokens-per-minute limit)", () => {
  test('is not a cooldown: the key stays in use for the requests that fit, and the limit is learnt', async () => {
    const ring = keyRing('a');
    const tooLarge = { 'x-ratelimit-limit-tokens': '30000', 'x-ratelimit-remaining-tokens': '29990', 'x-ratelimit-reset-tokens': '20ms' };
    const message = 'Request too large for gpt-4o in organization org-test on tokens per min (TPM): Limit 30000, Requested 30601. The input or output tokens must be reduced in order to run successfully.';
    const calls = provider(BASE, ({ body }) => (Number(body?.max_tokens) > 30_000 ? errorReply(429, 'rate_limit_exceeded', tooLarge, message) : chatReply(BODY.model, 'ok')));
    const { manager, client } = manage({ providers: { openai: { baseURL: BASE, keys: ring.keys } } });
    const cooldowns = record(manager, 'key:cooldown');

    const big = await client.chat.completions.create({ ...BODY, max_tokens: 30_601 }).catch((e: unknown) => e);
    expect((big as { status?: number }).status).toBe(429);
    expect((big as Error).message).toContain('Request too large');
    const small = await client.chat.completions.create(BODY);

    expect(small.choices[0]!.message.content).toBe('ok');
    expect(cooldowns).toEqual([]);
    expect(calls).toHaveLength(2);
    // Learnt from the 429's headers: the next such request is refused here, not sent.
    const again = await client.chat.completions.create({ ...BODY, max_tokens: 30_601 }).catch((e: unknown) => e);
    expect((again as Error).message).toMatch(/larger than a tokens limit/);
    expect(calls).toHaveLength(2);
    expect(manager.stats().providers.openai!.keys[0]).toMatchObject({ status: 'active' });
  });
});
